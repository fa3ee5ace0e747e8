"""Which channels a class relies on, block by block, and the activation atlas of a block: the network's view of a
dataset, from the index in use (its labels, or the classes the network predicts).

The address is the state: ``/classes?block=repeat_1.11&class=zebra`` opens that class's channels of that block.
"""

import streamlit as st

from explorer.channels.index.store import IndexFileError
from explorer.concepts.figures import bars
from explorer.text.usertext import quoted, shown
from explorer.ui.caches import trace_of
from explorer.ui.channels import builder, channel_mosaic, index_in_use
from explorer.ui.classes_view import SOURCES, atlas_section, refused, sources_of, table_of
from explorer.ui.engines import engine_of
from explorer.ui.network import variant_sidebar
from explorer.ui.present import chart
from explorer.ui.tcav_panel import tcav_section

config = variant_sidebar()
names = trace_of(config).model.block_names()
engine, engine_key = engine_of(config)

st.title("Classes")
st.caption(
    "Which channels a class relies on at each depth, and the activation atlas of a block: a map of what it sees "
    "across a dataset, each cell drawn as the image that excites it most. Read from the index of dataset "
    "examples in use; a channel's own classes are on its Channels view."
)
index, line = index_in_use(engine)
st.caption(line)
sources = sources_of(index) if index is not None else []
if index is not None and not sources:
    st.info("This index was built before indexes recorded classes: build it again for this page.")
if not sources:
    builder(engine)
    st.stop()

asked_block = st.query_params.get("block")
DEFAULT = names[round(0.6 * (len(names) - 1))]
if asked_block is not None and asked_block not in names:
    st.error(f"This network has no block {quoted(asked_block)}. Here is {DEFAULT} instead.", icon=":material/link_off:")
    del st.query_params["block"]
    asked_block = None
block = asked_block or DEFAULT
if st.session_state.get("classes_block") != block:
    st.session_state["classes_block"] = block  # the address sets the picker before it is drawn

source = (
    st.segmented_control("Classes from", sources, format_func=SOURCES.get, default=sources[0], key="classes_source")
    or sources[0]
)
if source == "predicted" and "labels" not in sources:
    st.caption("This index has no labels (build one with `--classes folders`): classes are what the network predicts.")
try:
    table = table_of(index, source)
except IndexFileError as error:
    refused(error)
    st.stop()
by_count = sorted(table.names, key=lambda n: (-table.count_of(n), n))
asked_class = st.query_params.get("class")
if asked_class is not None and asked_class not in table.names:
    st.error(f"The index has no class {quoted(asked_class)} ({SOURCES[source]}).", icon=":material/link_off:")
    del st.query_params["class"]
    asked_class = None
chosen_class = asked_class or by_count[0]
if st.session_state.get("classes_class") != chosen_class:
    st.session_state["classes_class"] = chosen_class


def _moved() -> None:
    st.query_params["block"] = st.session_state["classes_block"]
    st.query_params["class"] = st.session_state["classes_class"]


st.subheader("A class's channels")
left, right = st.columns(2)
left.selectbox("Block", names, key="classes_block", on_change=_moved)
right.selectbox(
    "Class",
    by_count,
    key="classes_class",
    on_change=_moved,
    format_func=lambda n: f"{n} ({table.count_of(n)} images)",
)
top = table.channels_of(block, chosen_class, top=12)
chart(
    bars(
        [f"channel {row.channel}" for row in top],
        [row.mean for row in top],
        None,
        f"The channels of {block} that {chosen_class} raises most ({table.count_of(chosen_class)} images)",
    ),
    key="class_channels",
)
st.caption("The mean over the class's images of each channel's maximum; open a channel below.")
columns = st.columns(6)
created = index.manifest.get("created", "")
for column, row in zip(columns, top[:6], strict=False):
    column.image(channel_mosaic(str(index.folder), created, block, row.channel), width="stretch")
    column.markdown(f"[channel {row.channel}](/channels?block={block}&channel={row.channel}) {row.mean:.3g}")
st.caption(shown(f"{len(table.names)} classes, {table.images} images with one; index at {index.folder.name}."))
st.subheader("Does it use a concept?")
tcav_section(engine, engine_key, index, source, chosen_class, names)
st.subheader("The atlas of a block")
atlas_section(engine, engine_key, index)
