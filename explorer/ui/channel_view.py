"""The network map's Channels view: what each channel of a block responds to. Its dataset examples, from an
index (explorer.ui.channels), and its feature visualisation (explorer.ui.gallery), side by side."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.channels import IndexFileError
from explorer.channels.features.visualise import check_target
from explorer.channels.index.reader import ChannelIndex
from explorer.drawing.heatmaps import colourise, overlay, png_bytes
from explorer.runtime import Engine, EngineIdentity
from explorer.text.usertext import parse_int, quoted, shown
from explorer.ui.channels import builder, channel_map, channel_mosaic, index_in_use, outlined_example
from explorer.ui.circuit_panel import circuit_panel
from explorer.ui.classes_view import channel_classes
from explorer.ui.gallery import visualise_button

PER_PAGE = 24
ORDERS = {"index": "channel number", "mean": "mean over the images", "max": "strongest maximum"}


def channels_view(
    engine: Engine, engine_key: EngineIdentity, block: str, digest: str, data: bytes, crop, page: str = "map"
) -> None:
    """A block's channels, or the one in the address (``channel=``); ``page``: the page's address names the block
    as ``node=`` (the map) or ``block=`` (the Channels page)."""
    index, line = index_in_use(engine)
    st.caption(line)
    if index is not None:
        try:
            index.block(block)
        except IndexFileError as error:
            st.error(shown(error, limit=400), icon=":material/folder_off:")
            index = None
    count = channel_count(engine.source, repr(engine.config), block)
    asked = st.query_params.get("channel")
    if asked is not None:
        channel = parse_int(asked)
        if channel is None or not 0 <= channel < count:
            # Quoted once: the user's text escaped by quoted(), the rest the app's own words.
            message = (
                f"{quoted(asked)} is not a channel number"
                if channel is None
                else f"{shown(block)} has channels 0 to {count - 1}, not {channel}"
            )
            st.error(f"{message}. Here are all the channels instead.", icon=":material/link_off:")
            del st.query_params["channel"]
        else:
            if asked != str(channel):  # "+3", " 3": the address names it as links do
                st.query_params["channel"] = str(channel)
            channel_detail(engine, engine_key, index, block, channel, digest, data, crop)
            circuit_panel(engine, engine_key, index, block, channel, go=_go(page))
            builder(engine)
            return
    order_by = "index"
    if index is not None:  # without an index there is one order, the channels' numbers: nothing to choose
        order_by = (
            st.segmented_control(
                "Sort by", list(ORDERS), format_func=ORDERS.get, default=list(ORDERS)[-1], key=f"channel_order_{block}"
            )
            or list(ORDERS)[-1]
        )
    order = index.order(block, order_by) if index is not None else np.arange(count)
    pages = -(-len(order) // PER_PAGE)
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"channel_page_{block}") if pages > 1 else 1
    on_page = [int(c) for c in order[(page - 1) * PER_PAGE : page * PER_PAGE]]
    images = visualise_button(engine, block, on_page, "Visualise this page", f"visualise_page_{block}_{page}")
    if index is None and not images:
        _open_by_number(block, count)  # no examples and no pictures yet: 24 tiles would be empty
    else:
        _tiles(block, on_page, images, index)
    st.caption(
        "Above, when visualised: the image that excites the channel most (feature visualisation). Below: its "
        "strongest images from the index, each cut to the part its maximum sees (its receptive field; deep blocks "
        "see all of it). Open one for the whole images."
    )
    builder(engine)


def _tiles(block: str, on_page: list[int], images: dict, index: ChannelIndex | None) -> None:
    per_row = 6
    for start in range(0, len(on_page), per_row):
        for column, channel in zip(st.columns(per_row), on_page[start : start + per_row], strict=False):
            if channel in images:
                column.image(images[channel].png, caption=f"visualised: {images[channel].value:.2f}", width="stretch")
            if index is not None:
                arrays = index.block(block)
                column.image(channel_mosaic(str(index.folder), _made(index), block, channel), width="stretch")
                column.caption(f"ch {channel}: max {arrays.values[channel, 0]:.2f}, mean {arrays.mean[channel]:.3f}")
            else:
                column.caption(f"ch {channel}")
            if column.button("Open", key=f"channel_open_{block}_{channel}"):
                st.query_params["channel"] = str(channel)
                st.rerun()


def _open_by_number(block: str, count: int) -> None:
    number, go = st.columns([3, 1], vertical_alignment="bottom")
    channel = number.number_input(f"Channel (0 to {count - 1})", 0, count - 1, 0, key=f"channel_number_{block}")
    if go.button("Open", key=f"channel_open_number_{block}", icon=":material/open_in_new:"):
        st.query_params["channel"] = str(int(channel))
        st.rerun()


@st.cache_data(show_spinner=False, max_entries=1024)
def channel_count(_model, network: str, block: str) -> int:
    """A block's channels, from a weightless copy of the network (keyed by the network's config)."""
    return check_target(_model, "channel", block, [0])


def _go(page: str):
    """Opening another block's channel: the address says which, in the page's own words."""

    def go(block: str, channel: int) -> None:
        st.query_params["node" if page == "map" else "block"] = block
        st.query_params["channel"] = str(channel)
        st.rerun()

    return go


def _made(index: ChannelIndex) -> str:
    return index.manifest.get("created", "")


def channel_detail(engine, engine_key, index: ChannelIndex | None, block: str, channel: int, digest, data, crop):
    link = f"[Link to this channel](/channels?block={block}&channel={channel})"
    if index is not None:
        arrays = index.block(block)
        rank = int(np.nonzero(index.order(block, "mean") == channel)[0][0]) + 1
        st.markdown(
            f"**Channel {channel} of {block}**: mean {arrays.mean[channel]:.4f} over the {len(index.images)} images "
            f"({rank} of {arrays.channels} by mean), strongest maximum {arrays.values[channel, 0]:.3f}. {link}"
        )
    else:
        st.markdown(f"**Channel {channel} of {block}**. {link}")
    if st.button("All channels", icon=":material/grid_view:", key="channel_back"):
        del st.query_params["channel"]
        st.rerun()
    picture, on_image = st.columns([1, 2])
    with picture:
        images = visualise_button(engine, block, [channel], "Visualise it", f"visualise_{block}_{channel}")
        if channel in images:
            st.image(images[channel].png, caption=f"what excites it most (its mean on it: {images[channel].value:.3f})")
    values = channel_map(engine, engine_key, digest, block, channel, data)
    left, right = on_image.columns(2)
    left.image(png_bytes(colourise(values, (224, 224))), caption=f"channel {channel} on the current image")
    right.image(overlay(crop, values), caption="over the image")
    if index is None:
        return
    examples = index.examples(block, channel)
    per_row = 5
    for start in range(0, len(examples), per_row):
        for column, example in zip(st.columns(per_row), examples[start : start + per_row], strict=False):
            picture_png = outlined_example(str(index.folder), _made(index), block, channel, example.rank)
            where = f"({example.row}, {example.column})"
            caption = f"#{example.rank + 1} {shown(example.path, limit=60)}: {example.value:.3f} at {where}"
            if picture_png is None:
                column.warning(f"{caption}: the image is no longer there")
            else:
                column.image(picture_png, caption=caption, width="stretch")
    channel_classes(index, block, channel)
