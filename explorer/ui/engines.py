"""The engines the pages run: the server's default (loaded once, its trained weights in the background), the
Weights box, and engines for other settings from one pool within a memory budget."""

from __future__ import annotations

import streamlit as st

from explorer.nets import VARIANTS, NetworkConfig, make_config
from explorer.nets.hub import HUB_REPOS, download_hub_weights, hub_tags_for
from explorer.nets.loading import load_weights, weights_identity
from explorer.nets.weights import RANDOM, SESSION_FILES, WeightsError, local_weight_files, weights_dir
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.default_weights import DefaultWeights
from explorer.runtime.engine_pool import EnginePool
from explorer.text.messages import headline
from explorer.text.usertext import shown
from explorer.ui.disk import own_weight_names
from explorer.ui.memory import server_memory

PoolKey = tuple[str, tuple[int, int, int], str, str]  # variant, blocks of each type, weights key, its identity


@st.cache_resource(show_spinner=False)
def server_defaults() -> DefaultWeights:
    """The server's default weights and engine (EXPLORER_WEIGHTS; timm's tf_in1k when they can be had).

    Started once per server process: by ``app.py``'s start-up hook, before anyone connects, or
    failing that by the first page anyone opens. Sessions that have not picked weights of their
    own follow it, also when it moves from random weights to downloaded ones.
    """
    return DefaultWeights().start()


def trainable(config: NetworkConfig) -> bool:
    """Whether trained weights exist for this network as configured: the released network and Inception-v4
    with their own block counts (the paper's variants were never published trained)."""
    return config == VARIANTS[config.variant] and bool(hub_tags_for(config.variant))


def _weights_key(config: NetworkConfig) -> str:
    """Where a session keeps its choice: "weights" for the released network (as before), else per network."""
    return "weights" if config.variant == "released" else f"weights:{config.variant}"


def weights_in_use(config: NetworkConfig) -> str:
    """This session's weights: "random", "file:NAME" or "hub:TAG"; the released network follows the server's
    default unless the session picked its own."""
    if not trainable(config):
        return RANDOM
    if config.variant != "released":
        return st.session_state.get(_weights_key(config), RANDOM)
    return st.session_state.get("weights") or server_defaults().status().weights


def _weights_label(key: str) -> str:
    if key == RANDOM:
        return "Random (seed 0)"
    kind, _, name = key.partition(":")
    if name.startswith(f"{SESSION_FILES}/"):  # a new head made in a session: its file's name
        return f"Made here: {name.rsplit('/', 1)[-1]}"
    return f"File: {name}" if kind == "file" else f"Hub: {name}"


def weights_sidebar(config: NetworkConfig) -> None:
    """The weights picker: random, a file from the server's weights folder, or a Hub download."""
    with st.sidebar.expander("Weights", expanded=weights_in_use(config) == RANDOM):
        if not trainable(config):
            published = [v for v in VARIANTS if hub_tags_for(v)]
            st.caption(
                "Real weights exist for "
                + " and ".join(f"{v} ({'/'.join(map(str, VARIANTS[v].repeats.as_tuple()))} blocks)" for v in published)
                + "; this runs on random ones."
            )
            return
        if config.variant == "released":
            status = server_defaults().status()
            if status.busy:
                _default_weights_progress(status.phase)
            elif status.phase == "failed" and "weights" not in st.session_state:
                # the cause in a line or two; the whole message (what to do, paths) folded away: the sidebar is
                # narrow, and the full text took about 40 lines of it
                st.warning(f"Random weights: {headline(status.message)}.", icon=":material/cloud_off:")
                with st.popover("Why, and what to do", icon=":material/help:"):
                    st.markdown(f"The server's default weights: {status.message}.")
        tags = hub_tags_for(config.variant)
        files = [p.name for p in local_weight_files()] + own_weight_names()
        options = [RANDOM] + [f"file:{name}" for name in files] + [f"hub:{tag}" for tag in tags]
        current = weights_in_use(config)
        choice = st.radio(
            "Weights",
            options,
            index=options.index(current) if current in options else 0,
            format_func=_weights_label,
            label_visibility="collapsed",
        )
        st.caption(
            f"Hub: timm's ImageNet ports of the TF-slim weights ({', '.join(HUB_REPOS[t] for t in tags)}), "
            "downloaded once into the Hugging Face cache. "
            f"Files: `.safetensors` or `.pth` in `{weights_dir()}/` on the server."
        )
        if choice != current:
            try:
                if choice.startswith("hub:"):
                    bar = st.progress(0.0, text="Downloading the weights...")
                    download_hub_weights(
                        choice.partition(":")[2],
                        progress=lambda done, total: bar.progress(
                            min(done / total, 1.0) if total else 0.0, text=f"Downloading: {done / 1e6:.0f} MB"
                        ),
                    )
                    bar.empty()
                engine_for(config, choice)
            except WeightsError as error:
                st.error(f"{shown(error, limit=400)}. The weights in use stay as they were.")
            else:
                st.session_state[_weights_key(config)] = choice
                st.rerun()


@st.fragment(run_every=1.0)
def _default_weights_progress(phase: str) -> None:
    """The default weights' progress, redrawn every second; the whole page reruns when the phase the page
    was drawn in is over (the banner says what is going on, and when it is done it goes)."""
    status = server_defaults().status()
    if status.phase != phase:
        st.rerun()
    if status.total:
        st.progress(
            min(status.done / status.total, 1.0),
            text=f"Downloading the trained weights: {status.done / 1e6:.0f} of {status.total / 1e6:.0f} MB",
        )
    else:
        st.caption(f"{status.message[:1].upper()}{status.message[1:]}...")


@st.cache_resource(show_spinner=False)
def engine_pool() -> EnginePool[Engine]:
    """The engines of every network and weights other than the server's default, within one memory budget
    (explorer.runtime.engine_pool), shared read-only by every session."""
    return EnginePool(_build_engine, memory=server_memory())


def _build_engine(key: PoolKey) -> Engine:
    variant, repeats, weights, _ = key
    return Engine(*load_weights(weights, make_config(variant, repeats=repeats)))


def engine_for(config: NetworkConfig, weights: str) -> Engine:
    """The engine of a network with some weights (built now if no session holds it): :class:`WeightsError`
    if the weights do not load."""
    key = (config.variant, config.repeats.as_tuple(), weights, weights_identity(weights))
    with st.spinner("Loading the model (seconds; on a GPU compiled kernels follow in the background)..."):
        return engine_pool().get(key)


def engine_of(config: NetworkConfig) -> tuple[Engine, EngineIdentity]:
    """This session's engine and its identity: what every result computed from it is cached by."""
    if config == VARIANTS["released"]:
        chosen = st.session_state.get("weights")
        try:
            with st.spinner("Loading the model (seconds; on a GPU compiled kernels follow in the background)..."):
                default_key, default_engine = server_defaults().current()  # both read together
        except RuntimeError:  # the start-up load failed: build here, where its error shows
            default_key, default_engine = RANDOM, engine_for(config, RANDOM)
        engine = default_engine if chosen in (None, default_key) else engine_for(config, chosen)
    else:
        engine = engine_for(config, weights_in_use(config))
    return engine, engine.identity
