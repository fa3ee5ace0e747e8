"""Picking an image: a sample, an upload or the camera, named in the address when it is a sample."""

from __future__ import annotations

import streamlit as st

from explorer.runtime.images import ACCEPTED_FORMATS, sample_path, sample_paths
from explorer.text.usertext import shown
from explorer.ui.state import keep, widget_default

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
    widget_default(source_key, "Samples")
    widget_default(sample_key, names[default_sample % len(names)])
    source = st.radio("Image from", SOURCES, horizontal=True, key=f"_{source_key}", on_change=keep, args=(source_key,))
    if source == "Samples":
        name = st.selectbox("Sample", names, key=f"_{sample_key}", on_change=keep, args=(sample_key,))
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
