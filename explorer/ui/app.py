"""The explorer's Streamlit app: the pages, and the server's start-up hook.

Two scripts serve it: ``app.py`` in a checkout (``make run``, Streamlit Community Cloud, Hugging
Face Spaces) and ``explorer/serve/app.py`` in an installed package (``irv2-explorer app``). Each
browser session runs its script as ``__main__``, which calls :func:`navigation`. ``streamlit run``
also imports the script to find ``app`` (an ``st.App``) and serves that: the same pages, plus
:func:`lifespan`, which starts loading the default model and its weights as soon as the server is
up, before anyone connects (seconds, CPU or GPU: a GPU's compiled kernels follow in the background, and so
does a download where the weights are not cached yet).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"


def navigation() -> None:
    """One session's run: the pages (absolute paths, so that any entry script can serve them).

    Presenting (``?present=1``), the pages are listed along the top instead of in the hidden sidebar, and a
    class room can be started; ``?room=CODE`` follows one (explorer.ui.follow).
    """
    from explorer.ui.present import presenter_controls, presenting

    present = presenting()
    st.set_page_config(
        page_title="Inception-ResNet-v2 Explorer",
        layout="wide",
        initial_sidebar_state="collapsed" if present else "auto",
    )
    pages = [
        st.Page(PAGES / "overview.py", title="Network", default=True),
        st.Page(PAGES / "map.py", title="Network map", url_path="map"),
        st.Page(PAGES / "counts.py", title="Layer counts", url_path="counts"),
        st.Page(PAGES / "graph.py", title="Block graph", url_path="graph"),
        st.Page(PAGES / "activations.py", title="Activations", url_path="activations"),
        st.Page(PAGES / "channels.py", title="Channels", url_path="channels"),
        st.Page(PAGES / "classes.py", title="Classes", url_path="classes"),
        st.Page(PAGES / "compare.py", title="Compare variants", url_path="compare"),
        st.Page(PAGES / "experiment.py", title="Residual scaling", url_path="experiment"),
        st.Page(PAGES / "tour.py", title="Guided tour", url_path="tour"),
        st.Page(PAGES / "transfer.py", title="New head", url_path="transfer"),
    ]
    page = st.navigation(pages, position="top" if present else "sidebar")
    presenter_controls(present)
    from explorer.ui.follow import TEACHER, follow, publish, teacher_controls

    follow(pages, page)
    if present or TEACHER in st.session_state:
        teacher_controls(page)
    publish(page)  # the page the teacher opened reaches the class before it has drawn (a map takes seconds)
    try:
        page.run()
    finally:  # and what the page wrote into the address; a page that stops early (st.stop) still counts
        publish(page)


def _warm_up() -> None:
    from explorer.nets import make_config  # imports torch: off the server's start
    from explorer.ui.caches import published_checks, summary_of
    from explorer.ui.engines import server_defaults

    server_defaults()  # starts loading; it reports on the console itself
    # The opening page's answer and summary (every variant counted), ready before the first visitor. The
    # caches' spinners look for a session this thread has not got, and say so: not worth a line on the console.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != "explorer-warm-up"
    )
    published_checks()
    summary_of(make_config("released"))
    precompute_galleries()


def precompute_galleries() -> None:
    """``EXPLORER_PRECOMPUTE=repeat_1.0,mixed_7a``: every channel's feature visualisation of these blocks, made
    at start for the default weights, 64 channels at a time (meant for a GPU server: on a CPU, hours)."""
    import os

    blocks = [b.strip() for b in os.environ.get("EXPLORER_PRECOMPUTE", "").split(",") if b.strip()]
    if not blocks:
        return
    from explorer.channels.features.visualise import check_target
    from explorer.ui.engines import server_defaults
    from explorer.ui.gallery import server_gallery, settings_for

    defaults = server_defaults()
    defaults.wait()  # the trained weights once they are in (or random ones, said on the console)
    _, engine = defaults.current()
    gallery, settings = server_gallery(), settings_for(engine)
    for block in blocks:
        try:
            count = check_target(engine.source, "channel", block, [0])
        except ValueError as error:
            print(f"EXPLORER_PRECOMPUTE: {error}", flush=True)
            continue
        for first in range(0, count, 64):
            channels = list(range(first, min(first + 64, count)))
            gallery.images(engine.source, engine.identity, block, channels, settings, engine.device)
        print(f"EXPLORER_PRECOMPUTE: {block}'s {count} channels visualised", flush=True)


@contextlib.asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    threading.Thread(target=_warm_up, name="explorer-warm-up", daemon=True).start()
    yield
