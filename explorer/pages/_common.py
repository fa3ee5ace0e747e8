"""What every page shares: the variant picker in the sidebar and the cached, read-only results.

Choices live in ``st.session_state`` under keys of their own (not the widgets' keys), so they
survive moving between pages; everything cached is keyed by plain values and never mutated.
"""

from __future__ import annotations

import streamlit as st

from explorer.claims import Claim, check_claims
from explorer.counting import LayerCounts, Reconciliation, count_layers, reconcile
from explorer.graph import GraphRenderError, TracedNetwork, render, trace_network
from explorer.model import VARIANT_DESCRIPTIONS, VARIANTS, InceptionResNetConfig, make_config
from explorer.summary import ModelSummary, summarize


def _keep(name: str) -> None:
    st.session_state[name] = st.session_state[f"_{name}"]


def _widget_default(name: str, default: object) -> None:
    st.session_state.setdefault(name, default)
    st.session_state[f"_{name}"] = st.session_state[name]


def variant_sidebar() -> InceptionResNetConfig:
    """The variant and block counts the user picked, as a config."""
    _widget_default("variant", "released")
    variant = st.sidebar.selectbox(
        "Variant",
        list(VARIANTS),
        key="_variant",
        on_change=_keep,
        args=("variant",),
        help="released: the ImageNet network of TF-slim, Keras and timm. paper-v2 / paper-v1: as the paper draws them.",
    )
    st.sidebar.caption(VARIANT_DESCRIPTIONS[variant])
    base = VARIANTS[variant].repeats
    with st.sidebar.expander("Blocks of each type"):
        counts = []
        for letter, default in zip("ABC", (base.a, base.b, base.c), strict=True):
            name = f"repeats_{variant}_{letter}"
            _widget_default(name, default)
            counts.append(st.slider(f"Inception-ResNet-{letter}", 1, 30, key=f"_{name}", on_change=_keep, args=(name,)))
    return make_config(variant, repeats=tuple(counts))


@st.cache_data(show_spinner="Summarising the network with torchinfo...", max_entries=64)
def cached_summary(variant: str, repeats: tuple[int, int, int]) -> ModelSummary:
    return summarize(make_config(variant, repeats=repeats))


def summary_of(config: InceptionResNetConfig) -> ModelSummary:
    r = config.repeats
    return cached_summary(config.variant, (r.a, r.b, r.c))


@st.cache_data(show_spinner="Tracing the network and counting its layers...", max_entries=64)
def cached_counts(variant: str, repeats: tuple[int, int, int]) -> LayerCounts:
    return count_layers(make_config(variant, repeats=repeats))


def counts_of(config: InceptionResNetConfig) -> LayerCounts:
    r = config.repeats
    return cached_counts(config.variant, (r.a, r.b, r.c))


@st.cache_data(show_spinner="Checking published figures and claims on every variant...")
def published_checks() -> tuple[list[Reconciliation], list[Claim]]:
    """Published figures and seed claims, against the unmodified variants."""
    counts = {variant: cached_counts(variant, _default_repeats(variant)) for variant in VARIANTS}
    return reconcile(list(counts.values())), check_claims(counts)


def _default_repeats(variant: str) -> tuple[int, int, int]:
    r = VARIANTS[variant].repeats
    return (r.a, r.b, r.c)


@st.cache_resource(show_spinner="Tracing the network's shapes...", max_entries=32)
def cached_trace(variant: str, repeats: tuple[int, int, int]) -> TracedNetwork:
    """Shared by every session and never modified (a meta-device model and its traced operations)."""
    return trace_network(make_config(variant, repeats=repeats))


def trace_of(config: InceptionResNetConfig) -> TracedNetwork:
    r = config.repeats
    return cached_trace(config.variant, (r.a, r.b, r.c))


@st.cache_data(show_spinner="Rendering with Graphviz...", max_entries=128)
def cached_render(dot_source: str, fmt: str) -> bytes | None:
    """SVG or PNG bytes of a DOT source, or None when Graphviz's dot is missing."""
    import graphviz

    try:
        return render(graphviz.Source(dot_source), fmt)
    except GraphRenderError:
        return None
