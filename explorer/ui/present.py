"""Presenter mode, for a projector: no sidebar, larger type and pictures, big previous/next controls.

It is on while the address has ``?present=1`` (a teacher's link opens it) or after the sidebar's toggle,
and it stays on across pages for the session: Streamlit drops a page's query parameters when another
page opens, so each run writes ``present=1`` back, and the address is always a link to what is shown.
This module imports no torch, so the app's entry can call it before any page is loaded.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from explorer.text.usertext import shown

ON, OFF = ("1", "true", "on", "yes"), ("0", "false", "off", "no")

# On a projector-sized screen: the sidebar and its button gone (the pages are listed along the top) and the
# root type 1.4x as large (Streamlit sizes in rem). A phone opening the teacher's link keeps its own type and
# its collapsed sidebar, where Streamlit puts the page list on a narrow screen. Everywhere: big step buttons,
# less space above the content, the way out pinned to the top bar.
PRESENTER_CSS = """
<style>
@media (min-width: 900px) {
  html { font-size: 22px; }
  section[data-testid="stSidebar"], div[data-testid="stSidebarCollapsedControl"],
  button[data-testid="stExpandSidebarButton"] { display: none !important; }
}
div[class*="st-key-step_"] button { min-height: 3.2rem; font-size: 1.35rem; width: 100%; }
div[data-testid="stMainBlockContainer"] { padding-top: 4.5rem; }
/* in the bottom corner: the header holds the page links and, while a page runs, Streamlit's "Running... Stop",
   which covered the button there */
.st-key-leave_present { position: fixed; bottom: 1rem; right: 1.5rem; width: auto !important; z-index: 1000000; }
.st-key-leave_present button { background: #ffffff; border: 1px solid #d0d0d0; box-shadow: 0 1px 6px #0002; }
</style>
"""


def presenting() -> bool:
    """Whether this session presents: ``?present=`` when the address has it, else what the session chose."""
    asked = st.query_params.get("present")
    if asked is not None:
        if asked.lower() in ON + OFF:
            st.session_state["present"] = asked.lower() in ON
        else:
            st.session_state["present_error"] = (
                f"?present={shown(asked)} is not understood: use present=1 or present=0."
            )
    on = bool(st.session_state.get("present", False))
    if on:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]
    return on


def _set(on: bool) -> None:
    st.session_state["present"] = on
    if on:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]


def presenter_controls(on: bool) -> None:
    """The sidebar's toggle, or (the sidebar being hidden) a button to leave; the CSS while presenting."""
    error = st.session_state.pop("present_error", None)
    if error:
        st.error(error, icon=":material/link_off:")
    if on:
        st.html(PRESENTER_CSS)
        st.button(
            "Leave presenter mode",
            key="leave_present",
            type="tertiary",
            icon=":material/close:",
            on_click=_set,
            args=(False,),
        )
    else:
        st.session_state["present_toggle"] = False
        st.sidebar.toggle(
            "Presenter mode",
            key="present_toggle",
            on_change=lambda: _set(bool(st.session_state["present_toggle"])),
            help="For a projector: no sidebar, larger type and pictures, big previous/next buttons and the arrow "
            "keys on the tour and the map. The address becomes a link that opens the same view in presenter mode.",
        )


def step_controls(position: int, count: int, go_to: Callable[[int], None], names: Sequence[str]) -> None:
    """Previous / next buttons around "step i of n"; while presenting they are large and take the arrow keys."""
    on = bool(st.session_state.get("present", False))
    left, middle, right = st.columns([2, 1, 2], vertical_alignment="center")
    # While presenting, the buttons show their keys (an arrow each): an arrow icon too would read "Next: X → →".
    if left.button(
        f"Previous: {names[position - 1]}" if position > 0 else "Previous",
        key="step_previous",
        icon=None if on else ":material/arrow_back:",
        disabled=position == 0,
        shortcut="Left" if on else None,
        width="stretch",
    ):
        go_to(position - 1)
    middle.markdown(f"<div style='text-align:center'>Step {position + 1} of {count}</div>", unsafe_allow_html=True)
    if right.button(
        f"Next: {names[position + 1]}" if position + 1 < count else "Next",
        key="step_next",
        icon=None if on else ":material/arrow_forward:",
        icon_position="right",
        disabled=position + 1 >= count,
        shortcut="Right" if on else None,
        width="stretch",
    ):
        go_to(position + 1)


def sized(figure: go.Figure, height: int | None = None, *, present: bool | None = None) -> go.Figure:
    """``figure`` as the page draws it: larger type and taller while presenting (this session's mode unless
    ``present`` says)."""
    if st.session_state.get("present", False) if present is None else present:
        figure.update_layout(font={"size": 20}, title_font={"size": 26})
        if height or figure.layout.height:
            figure.update_layout(height=int((height or figure.layout.height) * 1.4))
    elif height:
        figure.update_layout(height=height)
    return figure


@dataclass(frozen=True)
class Ready:
    """A figure made ready to draw, its title taken out to go above it (:func:`ready`): what a cache shared by
    every session holds (:func:`explorer.ui.caches.shared_figures`), so that no run changes it."""

    title: str
    figure: go.Figure


def ready(figure: go.Figure, *, height: int | None = None, present: bool | None = None) -> Ready:
    """``figure``, changed in place: its title taken out (a plotly title is one line of SVG, clipped at 390 px on
    a phone) and sized as :func:`sized` does."""
    title = figure.layout.title.text or ""
    if title:
        top = figure.layout.margin.t
        figure.update_layout(title_text=None, margin={"t": 10 if top is None else min(top, 10)})
    return Ready(title, sized(figure, height, present=present))


def chart(
    figure: go.Figure | Ready, *, height: int | None = None, where: DeltaGenerator | None = None, **options
) -> Any:
    """A plotly figure with its title above it as the page's own text, which wraps on a phone, sized as
    :func:`sized` does; a :class:`Ready` one is drawn as it is."""
    where = where or st.container()
    drawn = figure if isinstance(figure, Ready) else ready(figure, height=height)
    if drawn.title:
        # A plotly title's user text was escaped for HTML: undone, then escaped for markdown. Plain text, not bold:
        # emphasis around a title that quotes user text would dress that text up as the app's own.
        where.markdown(shown(html.unescape(drawn.title.replace("<br>", " ")), limit=300))
    return where.plotly_chart(drawn.figure, **options)  # the selection, with on_select
