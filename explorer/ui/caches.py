"""Cached, read-only results every page shares, each keyed by plain values that say what made it: summaries,
counts, the published checks, traced networks, rendered drawings, a block's inputs and inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import streamlit as st

from explorer.analysis.claims import Claim, check_claims
from explorer.analysis.counting import LayerCounts, count_layers
from explorer.analysis.reconciliation import Reconciliation, reconcile
from explorer.analysis.summary import ModelSummary, summarize
from explorer.drawing.graph import GraphRenderError, TracedNetwork, render, trace_network
from explorer.drawing.heatmaps import colourise, png_bytes
from explorer.nets import VARIANTS, NetworkConfig, make_config
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.images import load_image
from explorer.ui.memory import budgeted

P = ParamSpec("P")
R = TypeVar("R")


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


@budgeted("Rendering with Graphviz...")
def cached_render(dot_source: str, fmt: str) -> bytes | None:
    """SVG or PNG bytes of a DOT source, or None when Graphviz's dot is missing."""
    import graphviz

    try:
        return render(graphviz.Source(dot_source), fmt)
    except GraphRenderError:
        return None


@budgeted("Running the image through the network as built...")
def cached_block_inputs(_engine: Engine, engine_key: EngineIdentity, digest: str, _data: bytes) -> dict:
    """Every block's input for one image (tensors on the engine's device, never modified), to open blocks fast."""
    return _engine.block_inputs(load_image(_data).image)


@budgeted("Computing the outputs inside...")
def cached_inside(_engine: Engine, engine_key: EngineIdentity, digest: str, node: str, _data: bytes) -> tuple:
    """Every output inside a block or a unit, as values, with each mean map as a PNG (cheap to show)."""
    inside = _engine.inside(cached_block_inputs(_engine, engine_key, digest, _data), node)
    return tuple((part, png_bytes(colourise(part.mean_map, (96, 96)))) for part in inside)


def shared_figures(build: Callable[P, R]) -> Callable[P, R]:
    """``build`` (a function of plain values returning :class:`explorer.ui.present.Ready` figures, presenter mode
    among the values) cached for every session, which draw them with ``chart`` and never change them. Building
    a plotly figure validates each property in Python: 47 ms a bar chart of 12 traces (2-core Xeon), holding the
    GIL, the bulk of a page's run when a class of 30 follows its teacher onto it."""
    return st.cache_resource(show_spinner=False, max_entries=64)(build)
