"""The network picker in the sidebar (variant, block counts) and the address that carries it (``variant=``,
``blocks=``)."""

from __future__ import annotations

import streamlit as st

from explorer.nets import MAX_BLOCKS, VARIANT_DESCRIPTIONS, VARIANTS, NetworkConfig, make_config
from explorer.nets.weights import RANDOM
from explorer.text.usertext import parse_int, quoted, shown
from explorer.ui.engines import server_defaults, weights_in_use, weights_sidebar
from explorer.ui.state import keep, widget_default


def _written() -> dict[str, set[str]]:
    """Every ``variant=`` and ``blocks=`` value this session has written into the address."""
    return st.session_state.setdefault("network_in_url", {"variant": set(), "blocks": set()})


def _network_from_url() -> None:
    """``?variant=`` and ``?blocks=A,B,C`` of a shared link, taken into the session's choices.

    A value is taken when this session has never written it into the address itself, so a link opens its
    network and a picker moved afterwards keeps its move. Not only the last value written: a rerun can come
    with the address as it was before the last run rewrote it (a second move while the browser had not yet
    taken in the first one's address, on a busy server), and that older value would undo the move.
    """
    written = _written()
    asked = st.query_params.get("variant")
    if asked is not None and asked not in written["variant"]:
        if asked in VARIANTS:
            st.session_state["variant"] = asked
        else:
            st.session_state["url_errors"] = [
                f"No variant called {quoted(asked)}; the variants are {', '.join(VARIANTS)}."
            ]
    blocks = st.query_params.get("blocks")
    if blocks is not None and blocks not in written["blocks"]:
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
    written = _written()
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        else:
            written[name].add(value)
            if st.query_params.get(name) != value:
                st.query_params[name] = value


def variant_sidebar() -> NetworkConfig:
    """The variant, block counts and weights the user picked (the config), and the random-weights banner.

    The network is in the address (``?variant=paper-v2&blocks=5,10,5`` where it is not the released one), so
    that a link opens the same network; the address sets the pickers before they are drawn.
    """
    _network_from_url()
    for error in st.session_state.pop("url_errors", []):
        st.error(error, icon=":material/link_off:")
    widget_default("variant", "released")
    variant = st.sidebar.selectbox(
        "Variant",
        list(VARIANTS),
        key="_variant",
        on_change=keep,
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
            widget_default(name, default)
            title = f"Inception-ResNet-{letter}" if VARIANTS[variant].residual else f"Inception-{letter}"
            counts.append(st.slider(title, 1, MAX_BLOCKS, key=f"_{name}", on_change=keep, args=(name,)))
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
