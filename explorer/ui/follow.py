"""A class follows its teacher (explorer.classroom.rooms): the teacher starts a room in presenter mode and shows
its code, link and QR code; a student who opens ``?room=CODE`` follows the teacher's page and its address
(network, block, node, channel, tour step, sample image) within about a second, until "Stop following".

The view is what the address holds: every page keeps its state there, so a view is a page and its query
parameters, minus the ones that are each person's own (presenter mode, the room itself). The teacher's session
publishes its view after each run when it changed; a follower's fragment reads the room every second and, when
the version moved on, applies it (the page through ``st.switch_page``, with its parameters).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from urllib.parse import urlsplit

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from explorer.classroom.rooms import RoomError, Rooms, View, normal_code, rooms_from_environment
from explorer.text.usertext import shown

OWN_PARAMS = ("present", "room")  # each person's own: never published, never applied
TEACHER, FOLLOWING, APPLIED, PAUSED = "room_teacher", "room_following", "room_applied", "room_paused"
REFUSED = "room_refused"


@st.cache_resource(show_spinner=False)
def server_rooms() -> Rooms:
    """The rooms every session of this server reads: this process's, or Redis's (``EXPLORER_ROOMS``)."""
    return rooms_from_environment()


def view_now(page: StreamlitPage) -> View:
    params = {k: v for k, v in st.query_params.to_dict().items() if k not in OWN_PARAMS}
    return View(page.url_path, params)


def room_link(code: str) -> str:
    """The address students open: this server's, as the teacher's browser reached it."""
    url = st.context.url or ""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return f"{base}/?room={code}"


def qr_png(text: str) -> bytes:
    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=8, border=2)
    return out.getvalue()


def follow(pages: Sequence[StreamlitPage], page: StreamlitPage) -> None:
    """Before the page runs: join the room the address names, apply the teacher's newest view, and the banner."""
    refused = st.session_state.pop(REFUSED, None)
    if refused:
        st.warning(refused, icon=":material/block:")
    asked = st.query_params.get("room")
    if asked is not None and st.session_state.get(FOLLOWING) is None and TEACHER not in st.session_state:
        try:
            st.session_state[FOLLOWING] = normal_code(asked)
        except RoomError as error:
            st.error(f"{error}.", icon=":material/link_off:")
            del st.query_params["room"]
            return
    code = st.session_state.get(FOLLOWING)
    if code is None:
        return
    try:
        room = server_rooms().read(code)
    except Exception as error:  # the store is away (Redis restarting): said, and tried again on the next run
        st.warning(
            f"The class room cannot be reached just now ({shown(error, limit=120)}).", icon=":material/wifi_off:"
        )
        return
    if room is None:
        st.warning(f"Room {code} is closed (or never was): you have your own controls.", icon=":material/logout:")
        for key in (FOLLOWING, APPLIED, PAUSED):
            st.session_state.pop(key, None)
        st.query_params.pop("room", None)
        return
    if st.session_state.get(PAUSED):
        _paused_banner(code)
        return
    if st.session_state.get(APPLIED) != room.version:
        st.session_state[APPLIED] = room.version
        target = next((p for p in pages if p.url_path == room.view.page), None)
        params = {**room.view.params, "room": code}
        if target is not None and target.url_path != page.url_path:
            st.switch_page(target, query_params=params)
        if st.query_params.to_dict() != params:
            st.query_params.from_dict(params)
            st.rerun()
    _following_banner(code)
    _watch(code)


def _following_banner(code: str) -> None:
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(f"Following the teacher in room **{code}**: this page moves with theirs.", icon=":material/group:")
    if right.button("Stop following", key="room_stop", icon=":material/pan_tool:"):
        st.session_state[PAUSED] = True
        st.rerun()


def _paused_banner(code: str) -> None:
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption(f"You left room {code}'s view: your own controls. Follow again to join the teacher where they are.")
    if right.button("Follow again", key="room_rejoin", icon=":material/group_add:"):
        st.session_state.pop(PAUSED, None)
        st.session_state.pop(APPLIED, None)  # the teacher's view is applied again, whatever it is
        st.rerun()


@st.fragment(run_every=0.5)
def _watch(code: str) -> None:
    """Twice a second (a read of the room: microseconds in memory, a round trip to Redis): the whole page again
    when the teacher moved. Streamlit holds the tick while this session's page is still running."""
    try:
        room = server_rooms().read(code)
    except Exception:  # the store is away for a moment: the next tick tries again
        return
    if room is None or room.version != st.session_state.get(APPLIED):
        st.rerun(scope="app")


def teacher_controls(page: StreamlitPage) -> None:
    """Presenting: a popover to start a class room, then its code, link and QR code, and a way to end it."""
    mine = st.session_state.get(TEACHER)
    if mine is not None:
        _heartbeat(mine[0], mine[1])
    with st.popover(f"Room {mine[0]}" if mine else "Class room", icon=":material/groups:"):
        if mine is None:
            st.caption("Students who open the room's link follow this screen: its page, network, block and step.")
            if st.button("Start a class room", key="room_start", type="primary"):
                try:
                    code, secret = server_rooms().open(view_now(page))
                except Exception as error:  # the store is away: one line, no room
                    st.error(f"No room could be opened: {shown(error, limit=160)}.", icon=":material/error:")
                    return
                st.session_state[TEACHER] = (code, secret, view_now(page))
                st.rerun()
            return
        code = mine[0]
        link = room_link(code)
        st.markdown(f"## {code}")
        st.code(link, language=None)
        st.image(qr_png(link), caption="Scan to follow", width=220)
        if st.button("End the room", key="room_end", icon=":material/logout:"):
            with contextlib.suppress(RoomError):  # gone already (an hour away): nothing to close
                server_rooms().close(code, mine[1])
            del st.session_state[TEACHER]
            st.rerun()


def publish(page: StreamlitPage) -> None:
    """After the teacher's page ran: their view, when it changed, becomes the room's."""
    mine = st.session_state.get(TEACHER)
    if mine is None:
        return
    code, secret, last = mine
    now = view_now(page)
    if now == last:
        return
    try:
        server_rooms().move(code, secret, now)
    except RoomError as error:  # expired, or this session is not the teacher's after all
        st.session_state.pop(TEACHER, None)
        st.session_state[REFUSED] = f"{error}."  # said on the next run: this one may be ending in a rerun
        return
    st.session_state[TEACHER] = (code, secret, now)


@st.fragment(run_every=60.0)
def _heartbeat(code: str, secret: str) -> None:
    """While the teacher's tab is open the room stays, however long they stay on one view."""
    try:
        server_rooms().heartbeat(code, secret)
    except RoomError as error:  # expired, or not this session's room
        st.session_state.pop(TEACHER, None)
        st.session_state[REFUSED] = f"{error}."
        st.rerun(scope="app")
