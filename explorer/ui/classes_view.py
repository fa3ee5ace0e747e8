"""Classes and the atlas in the app: a channel's classes (in the Channels view), a class's channels, and the
activation atlas of a block drawn as a job of the server's queue (explorer.ui.pages.classes)."""

from __future__ import annotations

import io
from urllib.parse import quote

import streamlit as st

from explorer.channels.features.visualise import Settings
from explorer.channels.index.reader import ChannelIndex
from explorer.channels.index.store import IndexFileError
from explorer.concepts.atlas import AtlasLayout, atlas_blocks, layout
from explorer.concepts.classes import ClassTable
from explorer.concepts.drawn import atlas_picture, atlas_settings, cell_pictures, png
from explorer.concepts.figures import atlas_figure, bars
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.images import ImageError, load_image
from explorer.runtime.jobs import Report
from explorer.runtime.memory import SizedCache
from explorer.text.usertext import shown
from explorer.ui.jobs import job_button
from explorer.ui.memory import server_memory
from explorer.ui.present import chart

SOURCES = {"labels": "the folder's labels", "predicted": "what the network predicts"}


@st.cache_resource(show_spinner=False)
def class_table(folder: str, created: str, source: str) -> ClassTable:
    """An index's class table, opened once per server (memory-mapped, read only); keyed by when the index was made,
    so a rebuilt index is another table."""
    from explorer.ui.channels import opened

    return ClassTable(opened(folder), source)


def sources_of(index: ChannelIndex) -> list[str]:
    """The tables an index has: its labels' (when built with them) and the network's predictions' (format 2)."""
    if index.manifest.get("format", 1) < 2:
        return []
    return (["labels"] if index.manifest.get("classes") else []) + ["predicted"]


def table_of(index: ChannelIndex, source: str) -> ClassTable:
    return class_table(str(index.folder), index.manifest.get("created", ""), source)


def class_link(block: str, name: str) -> str:
    return f"/classes?block={quote(block)}&class={quote(name, safe='')}"


def channel_classes(index: ChannelIndex | None, block: str, channel: int) -> None:
    """The classes whose images raise this channel most, under the channel's examples; nothing without a table."""
    sources = sources_of(index) if index is not None else []
    if not sources:
        return
    source = sources[0]
    found = table_of(index, source).classes_of(block, channel, top=8)
    if not found:
        return
    chart(
        bars(
            [row.name for row in found],
            [row.mean for row in found],
            [row.count for row in found],
            f"The classes that raise channel {channel} most ({SOURCES[source]})",
        ),
        height=max(220, 28 * len(found) + 60),
        key=f"classes_of_{block}_{channel}",
    )
    links = " · ".join(f"[{shown(row.name, limit=40)}]({class_link(block, row.name)})" for row in found[:5])
    st.caption(f"A class's channels: {links}")


@st.cache_resource(show_spinner=False)
def server_atlases() -> SizedCache:
    """Atlases (layout, picture) by (engine, index, block, grid, seed, settings): one per server, in its budget."""
    return SizedCache(server_memory())


def draw_atlas(
    engine: Engine, index: ChannelIndex, block: str, grid: int, seed: int, settings: Settings, report: Report
) -> tuple[AtlasLayout, bytes]:
    report(0.0, "laying out the vectors (UMAP)")
    found = layout(index, block, grid, seed)
    model = engine.source  # the network the index was built with: index_in_use checked that it fits

    def progress(done: int, total: int) -> None:
        report(0.1 + 0.9 * done / max(total, 1), f"feature visualisation of {len(found.cells)} cells")

    pictures = cell_pictures(model, found, engine.device, settings, progress)
    return found, png(atlas_picture(found, pictures, tile=64))


def atlas_section(engine: Engine, engine_key: EngineIdentity, index: ChannelIndex) -> None:
    blocks = atlas_blocks(index)
    if not blocks:
        st.info(
            "This index kept no atlas vectors: build it with `explorer index FOLDER --out DIR --atlas BLOCK` "
            "(the default keeps two blocks).",
            icon=":material/map:",
        )
        return
    left, middle, right = st.columns(3)
    block = left.selectbox("Block", blocks, key="atlas_block")
    grid = middle.select_slider("Grid", [4, 6, 8, 10, 12, 16, 20], value=8, key="atlas_grid")
    seed = int(right.number_input("Seed", 0, 10_000, 0, key="atlas_seed"))
    gpu = engine.device.type == "cuda"
    settings = atlas_settings(engine.device)
    key = (engine_key, str(index.folder), index.manifest.get("created", ""), block, grid, seed, settings)
    atlases = server_atlases()
    if key in atlases:
        found, picture = atlases.get(key, lambda: draw_atlas(engine, index, block, grid, seed, settings, _quiet))
    else:
        cells = grid * grid * 0.6  # about this share of the cells holds vectors
        seconds = 20 + cells * (0.1 if gpu else 3.2)  # measured by bench_atlas: H100; 2 CPU cores
        done = job_button(
            ("atlas", *key),
            f"Drawing the atlas of {block} ({grid} x {grid})",
            lambda report: atlases.get(key, lambda: draw_atlas(engine, index, block, grid, seed, settings, report)),
            estimate_s=seconds,
            button="Draw the atlas",
            widget_key=f"atlas_{block}_{grid}_{seed}",
            failed="The atlas could not be drawn",
            icon=":material/map:",
            primary=True,
        )
        if done is None:
            return
        found, picture = done.result
    from PIL import Image

    figure = atlas_figure(found, Image.open(io.BytesIO(picture)), index.images)
    chosen = chart(
        figure, height=figure.layout.height, on_select="rerun", selection_mode="points", key=f"atlas_{block}_{grid}"
    )
    st.caption(
        f"Each cell is the picture that excites its vectors' mean most; its class is the most frequent among its "
        f"vectors' images ({SOURCES.get(found.labels_from, found.labels_from)}). Hover for a cell's class and "
        "images, click one to see them, drag to zoom."
    )
    st.download_button("Download the atlas (PNG)", picture, f"atlas-{block}-{grid}.png", "image/png")
    points = (chosen or {}).get("selection", {}).get("points", []) if isinstance(chosen, dict) else []
    picked = [p.get("customdata") for p in points if p.get("customdata") is not None]
    if picked:
        cell_examples(index, found, int(picked[0] if not isinstance(picked[0], list) else picked[0][0]))


def cell_examples(index: ChannelIndex, found: AtlasLayout, number: int) -> None:
    cell = found.cells[number]
    st.markdown(f"Cell ({cell.row}, {cell.col}): {cell.count} vectors from {len(cell.images)} images")
    columns = st.columns(6)
    for column, image in zip(columns, cell.images[:6], strict=False):
        path = index.images[image]
        try:
            picture = load_image(str(index.root / path)).image
        except ImageError:
            column.caption(f"{shown(path, limit=40)}: no longer there")
            continue
        picture.thumbnail((160, 160))
        column.image(picture, caption=shown(path, limit=40))


def _quiet(_done: float, _text: str) -> None:
    """No progress to show: the atlas was dropped from the cache a moment ago and is drawn again here."""


def refused(error: IndexFileError) -> None:
    st.error(shown(error, limit=400), icon=":material/folder_off:")
