"""Session state that outlives a page: choices kept under keys of their own (not the widgets', so they survive
moving between pages), widget defaults, and choices reset when what they depend on changes."""

from __future__ import annotations

import hashlib

import streamlit as st


def keep(name: str) -> None:
    st.session_state[name] = st.session_state[f"_{name}"]


def widget_default(name: str, default: object) -> None:
    st.session_state.setdefault(name, default)
    st.session_state[f"_{name}"] = st.session_state[name]


def reset_when_changed(key: str, *depends_on: object) -> None:
    """Forget a widget's choice when what it was made for (an image, a network) is no longer what is shown,
    so that the widget starts again at its own default instead of carrying the choice over."""
    made_for = f"{key}:made_for"
    if st.session_state.get(made_for) != depends_on:
        st.session_state.pop(key, None)
        st.session_state[made_for] = depends_on


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
