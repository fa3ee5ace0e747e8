"""Download buttons: one call per file, the type from its name, and no rerun when clicked."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from explorer.ui.caches import cached_render

MIME_TYPES = {
    ".csv": "text/csv",
    ".dot": "text/vnd.graphviz",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".pt2": "application/zip",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def download(where: DeltaGenerator, label: str, data: str | bytes, file_name: str, key: str | None = None) -> None:
    """A button that saves ``data`` as ``file_name``; clicking it does not rerun the page (nothing changes)."""
    mime = MIME_TYPES[PurePath(file_name).suffix]
    where.download_button(label, data, file_name=file_name, mime=mime, on_click="ignore", key=key)


def download_json(where: DeltaGenerator, label: str, value: Any, file_name: str, key: str | None = None) -> None:
    """A button that saves a JSON-able value, indented for people who open it."""
    download(where, label, json.dumps(value, indent=2), file_name, key=key)


def graph_downloads(dot_source: str, name: str) -> None:
    """DOT, SVG and PNG of a drawing."""
    svg, png = cached_render(dot_source, "svg"), cached_render(dot_source, "png")
    cols = st.columns(3)
    download(cols[0], "Download DOT", dot_source, f"{name}.dot")
    if svg is None or png is None:
        st.warning("SVG and PNG downloads need Graphviz's `dot` program (Debian: `apt-get install graphviz`).")
    else:
        download(cols[1], "Download SVG", svg, f"{name}.svg")
        download(cols[2], "Download PNG", png, f"{name}.png")
