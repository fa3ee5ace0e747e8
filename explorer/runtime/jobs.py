"""Heavy work as jobs a server runs a few at a time, for every session: a page of feature visualisations, an
index of uploads, a new head's training, and whatever else takes more than a moment.

A shared server is a class's: one student starting minutes of work must not take it from the others. So:

- a session has at most one job at a time (a second is refused with a line saying which one it has);
- the server runs at most ``workers`` jobs at once (``EXPLORER_JOBS``; by default two a GPU, or one per eight
  CPU cores, since one job already uses every core) and queues the rest, at most ``max_queued``;
- sessions asking for the same thing (the same ``key``) share one job and its result;
- a job reports its progress through the callable it is given, which is also where it learns that every
  session waiting for it cancelled: the call raises :class:`JobCancelled` and the job's own code leaves nothing
  half-written (the work it runs already keeps its results whole: a kept image, an index renamed when done).

:class:`JobQueue` is what pages use; :class:`Jobs` runs it in this process. Where several server processes
stand behind one address, a queue on a shared store (Redis) takes its place behind the same methods.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

State = Literal["queued", "running", "done", "failed", "cancelled"]
#: Reports a job's progress (a fraction and a line); raises JobCancelled once nobody waits for the job.
Report = Callable[[float, str], None]
Work = Callable[[Report], Any]


class JobCancelled(Exception):
    """Raised in a job's thread, at its next progress report, once every session waiting for it cancelled."""


class JobRefused(ValueError):
    """A job that cannot be queued now, with a line for people saying why."""


@dataclass(frozen=True)
class JobView:
    """What a page shows of a job: plain values, read at one moment."""

    key: Hashable
    label: str
    state: State
    ahead: int  # jobs before this one: running, and queued before it (0 once it runs)
    wait_s: float  # about how long until it starts, from the estimates of those ahead
    fraction: float
    text: str
    sessions: int  # sessions waiting for it, this one included
    estimate_s: float
    result: Any = None
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class JobQueue(Protocol):
    workers: int

    def submit(self, session: str, key: Hashable, label: str, work: Work, estimate_s: float = 0.0) -> JobView: ...
    def view(self, session: str) -> JobView | None: ...
    def cancel(self, session: str) -> None: ...
    def collect(self, session: str) -> JobView | None: ...
    def busy(self) -> tuple[int, float]: ...


class _Job:
    def __init__(self, key: Hashable, label: str, work: Work, estimate_s: float, number: int) -> None:
        self.key, self.label, self.work, self.estimate_s, self.number = key, label, work, estimate_s, number
        self.state: State = "queued"
        self.sessions: set[str] = set()
        self.fraction, self.text, self.result, self.error = 0.0, "waiting", None, ""
        self.cancelled = threading.Event()
        self.started = 0.0

    def remaining_s(self, now: float) -> float:
        if self.state == "running":
            return max(self.estimate_s - (now - self.started), 0.0)
        return self.estimate_s


def default_workers() -> int:
    """Two jobs a GPU (their kernels are small: two keep it busier than one), else one per eight cores."""
    import torch

    if torch.cuda.is_available():
        return 2 * torch.cuda.device_count()
    return max(1, (os.cpu_count() or 1) // 8)


def workers_from_environment() -> int:
    """``EXPLORER_JOBS`` (a whole number from 1), or :func:`default_workers` where it is unset or not one."""
    text = os.environ.get("EXPLORER_JOBS", "").strip()
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    return default_workers()


class Jobs:
    """Jobs run by ``workers`` threads of this process, first come first served; see the module's text."""

    def __init__(self, workers: int | None = None, max_queued: int = 32) -> None:
        self.workers = workers_from_environment() if workers is None else max(1, workers)
        self.max_queued = max_queued
        self._queue: deque[_Job] = deque()
        self._running: list[_Job] = []
        self._by_key: dict[Hashable, _Job] = {}  # queued or running
        self._of_session: dict[str, _Job] = {}  # each session's job, until it collects a finished one
        self._changed = threading.Condition()
        self._numbers = itertools.count()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ what pages call
    def submit(self, session: str, key: Hashable, label: str, work: Work, estimate_s: float = 0.0) -> JobView:
        """Queue ``work`` for ``session``, or join the job already asked for under ``key``."""
        with self._changed:
            mine = self._of_session.get(session)
            if mine is not None and mine.key == key and not _finished(mine):
                return self._view(mine)
            if mine is not None and not _finished(mine):
                raise JobRefused(f"your job “{mine.label}” is not finished: wait for it or cancel it first")
            job = self._by_key.get(key)
            if job is None or job.cancelled.is_set():  # one being cancelled is not joined: it is about to stop
                if len(self._queue) >= self.max_queued:
                    raise JobRefused(
                        f"the server has {len(self._queue)} jobs waiting, its most: try again in a few minutes"
                    )
                job = _Job(key, label, work, estimate_s, next(self._numbers))
                self._by_key[key] = job
                self._queue.append(job)
                self._start_threads()
            job.sessions.add(session)
            self._of_session[session] = job
            self._changed.notify_all()
            return self._view(job)

    def view(self, session: str) -> JobView | None:
        with self._changed:
            job = self._of_session.get(session)
            return None if job is None else self._view(job)

    def cancel(self, session: str) -> None:
        """This session stops waiting; the job stops when no session waits for it any more."""
        with self._changed:
            job = self._of_session.pop(session, None)
            if job is None or _finished(job):
                return
            job.sessions.discard(session)
            if job.sessions:
                return
            job.cancelled.set()
            if job.state == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled")

    def collect(self, session: str) -> JobView | None:
        """The session's finished job, handed over once (the session may start another after it)."""
        with self._changed:
            job = self._of_session.get(session)
            if job is None or not _finished(job):
                return None
            del self._of_session[session]
            return self._view(job)

    def busy(self) -> tuple[int, float]:
        """Jobs running or waiting, and about how long until a job queued now would start."""
        with self._changed:
            return len(self._running) + len(self._queue), _wait_s(
                self._running, self._queue, self.workers, len(self._queue)
            )

    def wait(self, session: str, timeout: float | None = None) -> JobView | None:
        """The session's job once it has finished (for scripts and tests; pages poll :meth:`view`)."""
        with self._changed:
            self._changed.wait_for(
                lambda: session not in self._of_session or _finished(self._of_session[session]), timeout
            )
            job = self._of_session.get(session)
            return None if job is None else self._view(job)

    def idle(self, timeout: float | None = None) -> bool:
        """Whether nothing is running or waiting, once that is so or ``timeout`` has passed."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._running and not self._queue, timeout)

    # ------------------------------------------------------------------ the workers
    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._serve, name=f"explorer-job-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                job = self._queue.popleft()
                job.state, job.started, job.text = "running", time.monotonic(), "starting"
                self._running.append(job)
                self._changed.notify_all()
            try:
                result = job.work(lambda fraction, text, job=job: self._report(job, fraction, text))
            except JobCancelled:
                self._done(job, "cancelled")
            except Exception as error:  # a job's failure is its sessions' to read, not the server's
                self._done(job, "failed", error=str(error) or type(error).__name__)
            else:
                self._done(job, "cancelled" if job.cancelled.is_set() else "done", result=result)

    def _report(self, job: _Job, fraction: float, text: str) -> None:
        if job.cancelled.is_set():
            raise JobCancelled
        with self._changed:
            job.fraction, job.text = min(max(float(fraction), 0.0), 1.0), text
            self._changed.notify_all()

    def _done(self, job: _Job, state: State, result: Any = None, error: str = "") -> None:
        with self._changed:
            self._running.remove(job)
            job.result, job.error = result, error
            self._finish(job, state)

    def _finish(self, job: _Job, state: State) -> None:
        job.state = state
        job.work = _spent  # what it held (uploads, an engine) is not kept with the finished job
        if self._by_key.get(job.key) is job:
            del self._by_key[job.key]
        self._changed.notify_all()

    # ------------------------------------------------------------------ views
    def _view(self, job: _Job) -> JobView:
        place = self._queue.index(job) if job.state == "queued" else 0
        ahead = len(self._running) + place if job.state == "queued" else 0
        return JobView(
            job.key,
            job.label,
            job.state,
            ahead,
            _wait_s(self._running, self._queue, self.workers, place) if job.state == "queued" else 0.0,
            job.fraction,
            job.text,
            len(job.sessions),
            job.estimate_s,
            job.result,
            job.error,
        )


def _wait_s(running: list[_Job], queue: deque[_Job], workers: int, place: int) -> float:
    """The time until the job at ``place`` in the queue starts: the work ahead, shared by the workers."""
    now = time.monotonic()
    ahead = [job.remaining_s(now) for job in running] + [job.estimate_s for job in list(queue)[:place]]
    return 0.0 if workers - len(running) > place else sum(ahead) / workers


def _finished(job: _Job) -> bool:
    return job.state in ("done", "failed", "cancelled")


def _spent(report: Report) -> None:
    raise RuntimeError("a finished job does not run again")
