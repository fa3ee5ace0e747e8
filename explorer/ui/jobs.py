"""Heavy work started from a page, as a job of the server's queue (explorer.runtime.jobs): a button, a
confirmation above half a minute, then the job's place in the queue or its progress, with a Cancel button,
redrawn every second until it ends. Every page that starts minutes of work goes through :func:`job_button`."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.runtime.jobs import JobQueue, JobRefused, Jobs, JobView, Work
from explorer.text.usertext import shown

#: Work estimated above this many seconds is started only once the user confirms it.
CONFIRM_ABOVE_S = 30.0


@st.cache_resource(show_spinner=False)
def server_jobs() -> JobQueue:
    """The server's one queue, shared by every session."""
    return Jobs()


def session_id() -> str:
    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def about(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 120 else f"about {seconds / 60:.0f} min"


def job_button(
    key: Hashable,
    label: str,
    work: Work,
    *,
    estimate_s: float,
    button: str,
    widget_key: str,
    failed: str,
    icon: str | None = None,
    primary: bool = False,
    check: Callable[[], None] | None = None,
) -> JobView | None:
    """A button that queues ``work`` (shared with every session asking for ``key``), then its state until it
    ends. Returns the finished job once, when it is done, for the page to show its result; says itself when
    it failed (after ``failed``) or was cancelled. ``check`` runs on the press, before anything is queued: a
    ValueError from it is said at once, in a line."""
    jobs, me = server_jobs(), session_id()
    mine = jobs.view(me)
    if mine is not None and mine.key == key:
        if not mine.finished:
            _progress(key, widget_key)
            return None
        jobs.collect(me)
        if mine.state == "failed":
            st.error(f"{failed}: {shown(mine.error, limit=300)}", icon=":material/error:")
        elif mine.state == "cancelled":
            st.caption("Cancelled: nothing was kept of it.")
        return mine if mine.state == "done" else None
    other = mine is not None and not mine.finished
    confirming = f"{widget_key}:confirm"
    if st.session_state.get(confirming) and not other:
        _confirm(jobs, me, key, label, work, estimate_s, widget_key)
        return None
    pressed = st.button(
        button,
        key=widget_key,
        icon=icon,
        type="primary" if primary else "secondary",
        disabled=other,
    )
    st.caption(
        f"Your job “{shown(mine.label)}” is not finished: this can start once it ends."
        if other
        else f"{label}: {about(estimate_s)} on this server."
    )
    if pressed:
        try:
            if check is not None:
                check()
        except ValueError as error:
            st.error(f"{failed}: {shown(error, limit=400)}.", icon=":material/error:")
            return None
        if estimate_s > CONFIRM_ABOVE_S:
            st.session_state[confirming] = True
            st.rerun()
        _submit(jobs, me, key, label, work, estimate_s)
    return None


def _confirm(
    jobs: JobQueue, me: str, key: Hashable, label: str, work: Work, estimate_s: float, widget_key: str
) -> None:
    waiting, wait_s = jobs.busy()
    queue = f" It would wait behind {waiting} job{'s' if waiting != 1 else ''} ({about(wait_s)})." if waiting else ""
    st.warning(
        f"{label} takes {about(estimate_s)} of this server's time, shared with everyone using it.{queue} Start it?",
        icon=":material/hourglass_top:",
    )
    start, back = st.columns(2)
    if start.button("Start", key=f"{widget_key}:start", type="primary", icon=":material/play_arrow:"):
        del st.session_state[f"{widget_key}:confirm"]
        _submit(jobs, me, key, label, work, estimate_s)
    if back.button("Not now", key=f"{widget_key}:back"):
        del st.session_state[f"{widget_key}:confirm"]
        st.rerun()


def _submit(jobs: JobQueue, me: str, key: Hashable, label: str, work: Work, estimate_s: float) -> None:
    try:
        jobs.submit(me, key, label, work, estimate_s)
    except JobRefused as error:
        st.error(f"Not started: {error}.", icon=":material/block:")
        return
    st.rerun()


@st.fragment(run_every=1.0)
def _progress(key: Hashable, widget_key: str) -> None:
    """The job's place in the queue or its progress, redrawn every second; the whole page once it ends."""
    jobs, me = server_jobs(), session_id()
    view = jobs.view(me)
    if view is None or view.key != key or view.finished:
        st.rerun(scope="app")
    shared = f" (asked for by {view.sessions} sessions: one job for all)" if view.sessions > 1 else ""
    if view.state == "queued":
        st.info(
            f"{view.label}: waiting in the server's queue, {view.ahead} job{'s' if view.ahead != 1 else ''} ahead "
            f"of yours (it runs {jobs.workers} at a time); starts in {about(view.wait_s)}.{shared}",
            icon=":material/schedule:",
        )
    else:
        st.progress(view.fraction, text=f"{view.label}: {view.text}{shared}")
    if st.button("Cancel", key=f"{widget_key}:cancel", icon=":material/cancel:"):
        jobs.cancel(me)
        st.rerun(scope="app")
