"""What every page shares: the variant picker in the sidebar and the cached, read-only results.

Choices live in ``st.session_state`` under keys of their own (not the widgets' keys), so they
survive moving between pages; everything cached is keyed by plain values and never mutated.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from explorer.analysis.claims import Claim, check_claims
from explorer.analysis.counting import LayerCounts, count_layers
from explorer.analysis.reconciliation import Reconciliation, reconcile
from explorer.analysis.summary import ModelSummary, summarize
from explorer.drawing.graph import GraphRenderError, TracedNetwork, render, trace_network
from explorer.drawing.heatmaps import colourise, png_bytes
from explorer.nets import VARIANT_DESCRIPTIONS, VARIANTS, NetworkConfig, make_config
from explorer.nets.weights import (
    HUB_REPOS,
    RANDOM,
    WeightsError,
    download_hub_weights,
    hub_tags_for,
    load_weights,
    local_weight_files,
    weights_dir,
    weights_identity,
)
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.default_weights import DefaultWeights
from explorer.runtime.engine_pool import EnginePool
from explorer.runtime.images import ACCEPTED_FORMATS, load_image, sample_path, sample_paths
from explorer.text.usertext import parse_int, quoted, shown


def _keep(name: str) -> None:
    st.session_state[name] = st.session_state[f"_{name}"]


def _widget_default(name: str, default: object) -> None:
    st.session_state.setdefault(name, default)
    st.session_state[f"_{name}"] = st.session_state[name]


MAX_BLOCKS = 30  # the sliders' range


def _network_from_url() -> None:
    """``?variant=`` and ``?blocks=A,B,C`` of a shared link, taken into the session's choices.

    A value is taken when it is not the one this session itself last wrote into the address (that one is
    already the choice), so a link opens its network and a picker moved afterwards keeps its move.
    """
    asked = st.query_params.get("variant")
    if asked is not None and asked != st.session_state.get("variant_in_url"):
        if asked in VARIANTS:
            st.session_state["variant"] = asked
        else:
            st.session_state["url_errors"] = [
                f"No variant called {quoted(asked)}; the variants are {', '.join(VARIANTS)}."
            ]
    blocks = st.query_params.get("blocks")
    if blocks is not None and blocks != st.session_state.get("blocks_in_url"):
        counts = [parse_int(part) for part in blocks.split(",")]
        if len(counts) == 3 and all(n is not None and 1 <= n <= MAX_BLOCKS for n in counts):
            for letter, count in zip("ABC", counts, strict=True):
                st.session_state[f"repeats_{st.session_state.get('variant', 'released')}_{letter}"] = count
        else:
            st.session_state.setdefault("url_errors", []).append(
                f"?blocks={shown(blocks)} is not understood: give three block counts from 1 to {MAX_BLOCKS}, "
                "as in blocks=5,10,5."
            )


def _network_to_url(config: NetworkConfig) -> None:
    """The address names the network shown where it is not the released one as released."""
    default = VARIANTS[config.variant].repeats == config.repeats
    values = {
        "variant": None if config.variant == "released" and default else config.variant,
        "blocks": None if default else ",".join(map(str, config.repeats.as_tuple())),
    }
    for name, value in values.items():
        st.session_state[f"{name}_in_url"] = value
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value


def variant_sidebar() -> NetworkConfig:
    """The variant, block counts and weights the user picked (the config), and the random-weights banner.

    The network is in the address (``?variant=paper-v2&blocks=5,10,5`` where it is not the released one), so
    that a link opens the same network; the address sets the pickers before they are drawn.
    """
    _network_from_url()
    for error in st.session_state.pop("url_errors", []):
        st.error(error, icon=":material/link_off:")
    _widget_default("variant", "released")
    variant = st.sidebar.selectbox(
        "Variant",
        list(VARIANTS),
        key="_variant",
        on_change=_keep,
        args=("variant",),
        help="released: the ImageNet network of TF-slim, Keras and timm. paper-v2 / paper-v1: as the paper draws "
        "them. inception-v4: the paper's network without residual connections, the baseline it compares against.",
    )
    st.sidebar.caption(VARIANT_DESCRIPTIONS[variant])
    base = VARIANTS[variant].repeats
    with st.sidebar.expander("Blocks of each type"):
        counts = []
        for letter, default in zip("ABC", (base.a, base.b, base.c), strict=True):
            name = f"repeats_{variant}_{letter}"
            _widget_default(name, default)
            title = f"Inception-ResNet-{letter}" if VARIANTS[variant].residual else f"Inception-{letter}"
            counts.append(st.slider(title, 1, MAX_BLOCKS, key=f"_{name}", on_change=_keep, args=(name,)))
    config = make_config(variant, repeats=tuple(counts))
    _network_to_url(config)
    weights_sidebar(config)
    if weights_in_use(config) == RANDOM:
        following = config == VARIANTS["released"] and "weights" not in st.session_state
        coming = following and server_defaults().status().phase == "downloading"
        text = (
            "Random weights: the shapes, counts and graphs are exact, but predictions and activation maps are "
            "meaningless until real weights are loaded "
            + (
                "(the trained weights are downloading, see the sidebar; this page moves to them by itself)."
                if coming
                else "(sidebar, **Weights**)."
            )
        )
        if st.session_state.get("present", False):  # on a projector, a line rather than a box
            st.caption(f":material/casino: {text}")
        else:
            st.warning(text, icon=":material/casino:")
    return config


@st.cache_data(show_spinner="Summarising the network with torchinfo...", max_entries=64)
def cached_summary(variant: str, repeats: tuple[int, int, int]) -> ModelSummary:
    return summarize(make_config(variant, repeats=repeats))


def summary_of(config: NetworkConfig) -> ModelSummary:
    return cached_summary(config.variant, config.repeats.as_tuple())


@st.cache_data(show_spinner="Tracing the network and counting its layers...", max_entries=64)
def cached_counts(variant: str, repeats: tuple[int, int, int]) -> LayerCounts:
    return count_layers(make_config(variant, repeats=repeats))


def counts_of(config: NetworkConfig) -> LayerCounts:
    return cached_counts(config.variant, config.repeats.as_tuple())


@st.cache_data(show_spinner="Checking published figures and claims on every variant...")
def published_checks() -> tuple[list[Reconciliation], list[Claim]]:
    """Published figures and seed claims, against the unmodified variants."""
    counts = {variant: cached_counts(variant, config.repeats.as_tuple()) for variant, config in VARIANTS.items()}
    return reconcile(list(counts.values())), check_claims(counts)


@st.cache_resource(show_spinner="Tracing the network's shapes...", max_entries=32)
def cached_trace(variant: str, repeats: tuple[int, int, int]) -> TracedNetwork:
    """Shared by every session and never modified (a meta-device model and its traced operations)."""
    return trace_network(make_config(variant, repeats=repeats))


def trace_of(config: NetworkConfig) -> TracedNetwork:
    return cached_trace(config.variant, config.repeats.as_tuple())


@st.cache_data(show_spinner="Rendering with Graphviz...", max_entries=128)
def cached_render(dot_source: str, fmt: str) -> bytes | None:
    """SVG or PNG bytes of a DOT source, or None when Graphviz's dot is missing."""
    import graphviz

    try:
        return render(graphviz.Source(dot_source), fmt)
    except GraphRenderError:
        return None


# --------------------------------------------------------------------------------------------
# Weights and the inference engine
# --------------------------------------------------------------------------------------------


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
                st.warning(f"The server's default weights: {status.message}.", icon=":material/cloud_off:")
        tags = hub_tags_for(config.variant)
        options = [RANDOM] + [f"file:{p.name}" for p in local_weight_files()] + [f"hub:{tag}" for tag in tags]
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
    return EnginePool(_build_engine)


PoolKey = tuple[str, tuple[int, int, int], str, str]  # variant, blocks of each type, weights key, its identity


def _build_engine(key: PoolKey) -> Engine:
    variant, repeats, weights, _ = key
    return Engine(*load_weights(weights, make_config(variant, repeats=repeats)))


def engine_for(config: NetworkConfig, weights: str) -> Engine:
    """The engine of a network with some weights (built now if no session holds it): :class:`WeightsError`
    if the weights do not load."""
    key = (config.variant, config.repeats.as_tuple(), weights, weights_identity(weights))
    with st.spinner("Loading the model (on a GPU this compiles and captures its pipeline: a minute or two, once)..."):
        return engine_pool().get(key)


def engine_of(config: NetworkConfig) -> tuple[Engine, EngineIdentity]:
    """This session's engine and its identity: what every result computed from it is cached by."""
    if config == VARIANTS["released"]:
        chosen = st.session_state.get("weights")
        try:
            with st.spinner("Loading the model (on a GPU this compiles its pipeline: a minute or two, once)..."):
                default_key, default_engine = server_defaults().current()  # both read together
        except RuntimeError:  # the start-up load failed: build here, where its error shows
            default_key, default_engine = RANDOM, engine_for(config, RANDOM)
        engine = default_engine if chosen in (None, default_key) else engine_for(config, chosen)
    else:
        engine = engine_for(config, weights_in_use(config))
    return engine, engine.identity


# --------------------------------------------------------------------------------------------
# The image (shared by the Activations page and the network map) and what is computed from it
# --------------------------------------------------------------------------------------------

UPLOAD_TYPES = ["avif", "bmp", "gif", "jpeg", "jpg", "png", "tif", "tiff", "webp"]
SOURCES = ["Samples", "Upload", "Camera"]


def pick_image(slot: str = "0", default_sample: int = 0, sample: str | None = None) -> tuple[str, bytes] | None:
    """The image chosen in one slot: a sample, an upload or a camera shot, kept when moving between pages.

    ``sample`` (a sample's name, from a shared link) replaces the choice.
    """
    names = [p.stem for p in sample_paths()]
    source_key, sample_key = f"image_source_{slot}", f"image_sample_{slot}"
    if sample is not None:
        st.session_state[source_key], st.session_state[sample_key] = "Samples", sample
    _widget_default(source_key, "Samples")
    _widget_default(sample_key, names[default_sample % len(names)])
    source = st.radio("Image from", SOURCES, horizontal=True, key=f"_{source_key}", on_change=_keep, args=(source_key,))
    if source == "Samples":
        name = st.selectbox("Sample", names, key=f"_{sample_key}", on_change=_keep, args=(sample_key,))
        path = sample_path(name)
        return path.name, path.read_bytes()
    kept = f"image_{source.lower()}_{slot}"  # the last upload or shot, for the other pages
    if source == "Upload":
        given = st.file_uploader(f"An image ({', '.join(ACCEPTED_FORMATS)})", type=UPLOAD_TYPES, key=f"upload_{slot}")
        picked = (given.name, given.getvalue()) if given is not None else None
    else:
        shot = st.camera_input("Take a picture", key=f"camera_{slot}")
        picked = ("camera.jpg", shot.getvalue()) if shot is not None else None
    if picked is not None:
        st.session_state[kept] = picked
    elif kept in st.session_state:
        st.caption(f"Using {shown(st.session_state[kept][0])}, given before.")
    return st.session_state.get(kept)


def chosen_sample(slot: str = "0") -> str | None:
    """The sample in use in a slot (for links), or None when the image is an upload or a shot."""
    if st.session_state.get(f"image_source_{slot}", "Samples") != "Samples":
        return None
    return st.session_state.get(f"image_sample_{slot}")


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reset_when_changed(key: str, *depends_on: object) -> None:
    """Forget a widget's choice when what it was made for (an image, a network) is no longer what is shown,
    so that the widget starts again at its own default instead of carrying the choice over."""
    made_for = f"{key}:made_for"
    if st.session_state.get(made_for) != depends_on:
        st.session_state.pop(key, None)
        st.session_state[made_for] = depends_on


@st.cache_resource(show_spinner="Running the image through the network as built...", max_entries=8)
def cached_block_inputs(_engine: Engine, engine_key: EngineIdentity, digest: str, _data: bytes) -> dict:
    """Every block's input for one image (tensors on the engine's device, never modified), to open blocks fast."""
    return _engine.block_inputs(load_image(_data).image)


@st.cache_data(show_spinner="Computing the outputs inside...", max_entries=256)
def cached_inside(_engine: Engine, engine_key: EngineIdentity, digest: str, node: str, _data: bytes) -> tuple:
    """Every output inside a block or a unit, as values, with each mean map as a PNG (cheap to show)."""
    inside = _engine.inside(cached_block_inputs(_engine, engine_key, digest, _data), node)
    return tuple((part, png_bytes(colourise(part.mean_map, (96, 96)))) for part in inside)


def graph_downloads(dot_source: str, name: str) -> None:
    """DOT, SVG and PNG of a drawing."""
    svg, png = cached_render(dot_source, "svg"), cached_render(dot_source, "png")
    cols = st.columns(3)
    cols[0].download_button(
        "Download DOT", dot_source, file_name=f"{name}.dot", mime="text/vnd.graphviz", on_click="ignore"
    )
    if svg is None or png is None:
        st.warning("SVG and PNG downloads need Graphviz's `dot` program (Debian: `apt-get install graphviz`).")
    else:
        cols[1].download_button("Download SVG", svg, file_name=f"{name}.svg", mime="image/svg+xml", on_click="ignore")
        cols[2].download_button("Download PNG", png, file_name=f"{name}.png", mime="image/png", on_click="ignore")
