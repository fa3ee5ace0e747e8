"""The Channels page's "What builds this channel" panel: a channel's circuit (explorer.circuits), drawn, with its
inputs as tiles, the ablation check, and links that walk back a block at a time to the pixels, or forward.

The images it is measured on are the channel's dataset examples from the index in use, else the bundled
samples. Results are cached within the server's memory budget, keyed by the engine, the images and the settings;
the page's address (``?block=...&channel=...``) is the whole state of a walk, so a link shares it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st
import torch
from PIL import Image

from explorer.channels.index.reader import ChannelIndex
from explorer.circuits import NotLinear, circuit, expanded_weights, onward
from explorer.circuits.contributions import RESPONSES
from explorer.drawing.circuit import circuit_graph, kernel_picture
from explorer.drawing.heatmaps import png_bytes
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.images import ImageError, load_image, sample_paths
from explorer.runtime.jobs import Report
from explorer.runtime.memory import SizedCache
from explorer.ui.channels import channel_mosaic
from explorer.ui.gallery import visualise_button
from explorer.ui.jobs import job_button
from explorer.ui.memory import budgeted, server_memory

TILES = 6  # inputs shown as tiles (the diagram shows up to 8)


def measured_on(index: ChannelIndex | None, block: str, channel: int) -> tuple[tuple[str, ...], str]:
    """The images a channel's circuit is measured on (full paths) and a line saying which they are."""
    if index is not None and block in index.blocks:
        examples = index.examples(block, channel)
        if examples:
            return tuple(str(index.root / e.path) for e in examples), f"its top {len(examples)} images in the index"
    paths = tuple(str(p) for p in sample_paths())
    return paths, f"the {len(paths)} sample photographs (an index would give the channel's own top images)"


def _pixels(engine: Engine, paths: tuple[str, ...]) -> tuple[torch.Tensor, list[str]]:
    tensors, names = [], []
    for path in paths:
        try:
            image = load_image(path).image
        except ImageError:  # an example whose file has gone: measured on the rest
            continue
        tensors.append(engine.prepare(image)[1])
        names.append(path.rsplit("/", 1)[-1])
    if not tensors:
        raise ValueError("none of the images could be read")
    return torch.cat(tensors).to(engine.device), names


@st.cache_resource(show_spinner=False)
def server_circuits() -> SizedCache:
    """Circuits and where they go, by (engine identity, images, block, channel, response): one measurement per
    server, within its memory budget."""
    return SizedCache(server_memory())


def _silent(_done: float, _text: str) -> None:
    """No progress to show: the measurement was dropped from the cache a moment ago and is made again here."""


def measure(engine: Engine, paths: tuple[str, ...], block: str, channel: int, response: str, report: Report):
    """A circuit and where its channel goes: the work of one job of the server's queue."""
    report(0.0, "the channel's inputs and the check")
    pixels, names = _pixels(engine, paths)
    found = circuit(engine.source, pixels, block, channel, names=names, response=response)
    report(0.6, "where it goes")
    # Forward mode runs the rest of the network: four images suffice.
    return found, onward(engine.source, pixels[:4], block, channel, response)


@budgeted()
def cached_kernels(_engine: Engine, engine_key: EngineIdentity, block: str, channel: int):
    try:
        return expanded_weights(_engine.source, block, channel)
    except NotLinear as error:
        return str(error)


def circuit_panel(
    engine: Engine,
    engine_key: EngineIdentity,
    index: ChannelIndex | None,
    block: str,
    channel: int,
    go: Callable[[str, int], None],
) -> None:
    """The panel; ``go(block, channel)`` opens another channel (the page says how its address names it)."""
    st.subheader("What builds this channel")
    paths, which = measured_on(index, block, channel)
    response = (
        st.segmented_control(
            "Response",
            list(RESPONSES),
            default="max",
            key="circuit_response",
            help="; ".join(f"{k}: {v}" for k, v in RESPONSES.items()),
        )
        or "max"
    )
    key, circuits = (engine_key, paths, block, channel, response), server_circuits()
    if key in circuits:
        found, after = circuits.get(key, lambda: measure(engine, paths, block, channel, response, _silent))
    else:
        # About 4 s for 16 images on a 2-core CPU, and the rest of the network run forward (docs/guide/circuits.md).
        seconds = 1.0 if engine.device.type == "cuda" else 3.0 + 0.6 * len(paths)
        done = job_button(
            ("circuit", *key),
            f"Measuring what builds {block} {channel}",
            lambda report: circuits.get(key, lambda: measure(engine, paths, block, channel, response, report)),
            estimate_s=seconds,
            button="Measure what builds it",
            widget_key=f"circuit_{block}_{channel}_{response}",
            failed="The circuit could not be measured",
            icon=":material/hub:",
            primary=True,
        )
        if done is None:
            return
        found, after = done.result
    ablation = found.ablation
    st.markdown(
        f"Measured on {which}: the channel's response ({RESPONSES[response]}) is {ablation.response:.3g} on average. "
        f"Each input channel's score is gradient x activation of that response, summed over the grid: "
        f"**blue drives** it, **red holds it back**."
    )
    share = ablation.top / ablation.response if ablation.response else 0.0
    st.markdown(
        f"**Check**: setting the top {ablation.k} driving inputs to zero lowers the response by **{ablation.top:.3g}** "
        f"({share:.0%}); {ablation.k} random inputs lower it by {ablation.random:.3g} "
        f"(median of {ablation.draws} draws)."
    )
    shares = found.shares()
    if shares:
        st.caption(
            f"A residual block: through the shortcut (the channel's own input) {shares['identity']:+.3g}, through "
            f"the branches {shares['branches']:+.3g}."
        )
    classes = [(engine.label(c), s) for c, s in after.classes[:3]]
    outputs = [(f"{after.next_block} {c}", s) for c, s in after.channels[:5]]
    inputs = [(f"{c.block} {c.to_json().get('colour', c.channel)}", c.score) for c in found.inputs[:8]]
    st.graphviz_chart(circuit_graph(f"{block} {channel}", inputs, outputs, classes), width="content")
    _tiles(engine, engine_key, index, found, go)
    _onward(after, engine, go)


def _tiles(engine: Engine, engine_key: EngineIdentity, index: ChannelIndex | None, found, go) -> None:
    top = found.inputs[:TILES]
    before = top[0].block if top else ""
    kernels = cached_kernels(engine, engine_key, found.node, found.channel)
    pictures = {}
    if before != "pixels":
        pictures = visualise_button(
            engine,
            before,
            [c.channel for c in top],
            "Visualise these inputs",
            f"circuit_visualise_{before}_{found.node}_{found.channel}",
        )
    scale = 1.0
    if not isinstance(kernels, str):
        scale = float(np.abs(kernels.kernels[[c.channel for c in top]]).max()) or 1.0
    st.markdown(f"**Its strongest inputs**, channels of {before}: click one to walk back to what builds it.")
    for column, contribution in zip(st.columns(TILES), top, strict=False):
        label = contribution.to_json().get("colour", contribution.channel)
        if contribution.channel in pictures:
            column.image(pictures[contribution.channel].png, width="stretch")
        if index is not None and before in index.blocks:
            column.image(
                channel_mosaic(str(index.folder), index.manifest.get("created", ""), before, contribution.channel),
                width="stretch",
            )
        if before == "pixels":
            column.image(png_bytes(Image.new("RGB", (64, 64), str(label))), width="stretch")
        if not isinstance(kernels, str):
            kernel = kernel_picture(kernels.kernels[contribution.channel], scale, 96)
            column.image(png_bytes(kernel), caption="expanded weights", width="stretch")
        sign = "drives" if contribution.score > 0 else "holds back"
        extra = ""
        if contribution.identity is not None and contribution.identity:
            extra = f" (shortcut {contribution.identity:+.3g})"
        column.caption(f"{before} {label}: {contribution.score:+.3g}, {sign}{extra}")
        if before != "pixels" and column.button("What builds it", key=f"walk_{before}_{contribution.channel}"):
            go(before, contribution.channel)
    if isinstance(kernels, str):
        st.caption(f"No linear view here: {kernels}.")
    else:
        st.caption(
            "Expanded weights: the block with its ReLUs taken out, each input's kernel onto this channel (blue "
            "drives, red holds back, one scale for the row)"
            + ("; the shortcut adds the channel's own input on top." if kernels.identity else ".")
        )


def _onward(after, engine: Engine, go) -> None:
    if after.next_block is None:
        st.markdown("**Where it goes**: the last block; it feeds the classes directly.")
    else:
        st.markdown(f"**Where it goes**: the channels of {after.next_block} it feeds most.")
        for column, (channel, score) in zip(st.columns(5), after.channels[:5], strict=False):
            if column.button(f"{after.next_block} {channel}: {score:+.3g}", key=f"onward_{channel}"):
                go(after.next_block, channel)
    names = ", ".join(f"{engine.label(c)} ({s:+.3g})" for c, s in after.classes[:5])
    st.caption(f"The classes it raises most, to first order: {names}.")
