"""Students without a browser: each speaks to the server as Streamlit's own frontend does, over its websocket.

A class of 30 is 30 laptops; on the one machine that serves the class a chromium per student measures the
browsers, not the server. A ``Student`` here asks for a run with the room's address, keeps the page and query
string the server gives it (``navigation``, ``page_info_changed``), and ticks every fragment that
asks to be rerun (``auto_rerun``) at its interval, as the frontend's ``setInterval`` does, until told to stop
(``stop_auto_rerun``). It draws nothing: what it records is when each page's run began (the moment a browser's
address changes).

    students = Class("http://127.0.0.1:8501", "room=ABC234", count=30)
    students.start(); ...; students.arrived("/counts", since=t0); students.stop()
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


def cookies_for(base: str) -> str:
    """The cookies a browser would hold after opening the page (nginx's replica cookie among them)."""
    jar = http.cookiejar.CookieJar()
    urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)).open(base + "/", timeout=30).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


class Student:
    """One session: the runs it asks for and the pages it was sent to, with the time of each."""

    def __init__(self, base: str, query: str) -> None:
        self.base, self.query = base, query
        self.page = ""  # the page's script hash, as the server names it
        self.paths: dict[str, str] = {}  # script hash -> the page's address
        self.visits: list[tuple[float, str]] = []  # (time.monotonic(), page hash) at each page run's start
        self.finished: list[float] = []  # when each whole page's run finished (not a fragment's)
        self.ticks: dict[str, tuple[float, asyncio.Task]] = {}  # fragment id -> (interval, its ticking)
        self.error: BaseException | None = None
        self._socket = None
        self._whole_run = False  # a whole page's run (not a fragment's) has begun and not been seen to end

    async def _rerun(self, fragment: str = "") -> None:
        message = BackMsg()
        state = message.rerun_script
        state.query_string, state.page_script_hash = self.query, self.page
        state.fragment_id, state.is_auto_rerun = fragment, bool(fragment)
        state.context_info.url = f"{self.base}/?{self.query}"
        state.context_info.timezone, state.context_info.locale = "UTC", "en-GB"
        await self._socket.send(message.SerializeToString())

    async def _tick(self, fragment: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._rerun(fragment)

    def _take(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind == "new_session" and not message.metadata.run.fragment_ids:
            self._stop_ticks(list(self.ticks))  # a whole run begins: its fragments ask again (the frontend does so)
            self._whole_run = True
        elif kind == "new_session" and self._whole_run:
            # A fragment's run never preempts a whole one (Streamlit queues it), so the whole run ended. Streamlit
            # loses that run's script_finished when a fragment's tick reaches the server as its runner stops
            # (AppSession ignores events of a runner it has replaced), so this is the only sign of the end.
            self._whole_run = False
            self.finished.append(time.monotonic())
        elif kind == "navigation":
            self.paths.update({p.page_script_hash: "/" + p.url_pathname for p in message.navigation.app_pages})
            self.page = message.navigation.page_script_hash  # st.navigation's page: sent as each page run begins
            self.visits.append((time.monotonic(), self.page))
        elif kind == "script_finished" and self._whole_run:
            self._whole_run = False
            if message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self.finished.append(time.monotonic())
        elif kind == "page_info_changed":
            self.query = message.page_info_changed.query_string
        elif kind == "auto_rerun":
            fragment, interval = message.auto_rerun.fragment_id, message.auto_rerun.interval
            if fragment in self.ticks and self.ticks[fragment][0] == interval:
                return  # the same timer goes on, as in the frontend
            self._stop_ticks([fragment])
            self.ticks[fragment] = (interval, asyncio.create_task(self._tick(fragment, interval)))
        elif kind == "stop_auto_rerun":
            self._stop_ticks(message.stop_auto_rerun.fragment_ids)

    def _stop_ticks(self, fragments) -> None:
        for fragment in fragments:
            found = self.ticks.pop(fragment, None)
            if found is not None:
                found[1].cancel()

    async def run(self) -> None:
        parts = urlsplit(self.base)
        try:
            cookie = await asyncio.to_thread(cookies_for, self.base)
            async with websockets.connect(
                f"ws://{parts.netloc}/_stcore/stream",
                subprotocols=["streamlit"],
                additional_headers={"Cookie": cookie} if cookie else None,
                max_size=None,
                open_timeout=120,
            ) as socket:
                self._socket = socket
                await self._rerun()
                async for raw in socket:
                    message = ForwardMsg()
                    message.ParseFromString(raw)
                    self._take(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # kept for the report: a student who dropped out is a result
            self.error = error
        finally:
            self._stop_ticks(list(self.ticks))

    def path_at(self, when: float) -> str | None:
        """The page this student was on at ``when`` (the newest run begun by then)."""
        begun = [page for at, page in self.visits if at <= when]
        return self.paths.get(begun[-1]) if begun else None

    def first_visit(self, path: str, since: float) -> float | None:
        """When this student's first run of ``path`` began after ``since``."""
        return next((at for at, page in self.visits if at >= since and self.paths.get(page) == path), None)

    def drawn(self, path: str, since: float) -> float | None:
        """When ``path`` was last drawn whole after ``since``: a finished run with no run of another page after
        it began (a page that switches or reruns itself finishes more than once)."""
        begun = self.first_visit(path, since)
        if begun is None or not self.visits or self.paths.get(self.visits[-1][1]) != path:
            return None
        last = self.visits[-1][0]
        return next((at for at in reversed(self.finished) if at >= last), None)


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Class:
    """``count`` students on one event loop in a thread of their own (the caller may drive a browser meanwhile)."""

    def __init__(self, base: str, query: str, count: int) -> None:
        self.students = [Student(base, query) for _ in range(count)]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: list = []

    def start(self) -> None:
        self._thread.start()
        self._tasks = [asyncio.run_coroutine_threadsafe(s.run(), self._loop) for s in self.students]

    def on(self, path: str) -> int:
        """How many students are on ``path`` now."""
        now = time.monotonic()
        return sum(s.path_at(now) == path for s in self.students)

    def arrivals(self, path: str, since: float) -> list[float | None]:
        """Each student's seconds from ``since`` to their first run of ``path`` (None: not yet)."""
        found = [s.first_visit(path, since) for s in self.students]
        return [None if at is None else at - since for at in found]

    def drawings(self, path: str, since: float) -> list[float | None]:
        """Each student's seconds from ``since`` until ``path`` was drawn whole (None: not yet)."""
        found = [s.drawn(path, since) for s in self.students]
        return [None if at is None else at - since for at in found]

    def dropped(self) -> list[str]:
        return [f"{type(s.error).__name__}: {s.error}" for s in self.students if s.error is not None]

    def stop(self) -> None:
        """Every socket closed (each of the loop's tasks cancelled and awaited), then the loop."""
        asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
