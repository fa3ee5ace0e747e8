"""What the network has learned, a block at a time: its channels (feature visualisations and dataset examples),
one channel (its examples, its map on an image, and what builds it), walkable back block by block to the pixels.

The address is the state: ``/channels?block=repeat_1.4&channel=12`` opens that channel, so a link shares a walk.
"""

import streamlit as st

from explorer.runtime.images import ImageError, load_image
from explorer.text.usertext import quoted, shown
from explorer.ui.caches import trace_of
from explorer.ui.channel_view import channels_view
from explorer.ui.engines import engine_of
from explorer.ui.network import variant_sidebar
from explorer.ui.pictures import pick_image
from explorer.ui.state import image_digest

config = variant_sidebar()
names = trace_of(config).model.block_names()
asked = st.query_params.get("block")
DEFAULT = next((name for name in names if name.startswith("repeat")), names[len(names) // 2])

st.title("Channels")
st.caption(
    "What each channel of a block responds to: the image that excites it most, and its strongest images in an "
    "index of dataset examples. Open a channel for what builds it from the block before, and walk back to the "
    "pixels. The address opens this very view."
)
if asked is not None and asked not in names:
    st.error(f"This network has no block {quoted(asked)}. Here is {DEFAULT} instead.", icon=":material/link_off:")
    del st.query_params["block"]
    if "channel" in st.query_params:
        del st.query_params["channel"]
    asked = None
block = asked or DEFAULT


def _moved() -> None:
    st.query_params["block"] = st.session_state["channels_block"]
    if "channel" in st.query_params:  # a channel of the block left behind
        del st.query_params["channel"]


if st.session_state.get("channels_block") != block:
    st.session_state["channels_block"] = block  # the address sets the picker before it is drawn
chooser, image_column = st.columns([2, 1], vertical_alignment="bottom")
chooser.selectbox("Block", names, key="channels_block", on_change=_moved)
chooser.markdown(f"[{block} on the network map](/map?node={block})")
with image_column:
    picked = pick_image("0")
if picked is None:
    st.info("Choose an image: each channel's map is drawn on it.")
    st.stop()
name, data = picked
try:
    image = load_image(data, name)
except ImageError as error:
    st.error(shown(error, limit=400), icon=":material/image:")
    st.stop()
engine, engine_key = engine_of(config)
channels_view(engine, engine_key, block, image_digest(data), data, engine.prepare(image.image)[0], page="channels")
