"""Engines for the settings people try out, held within a memory budget that every session shares.

The server's default engine lives elsewhere (explorer.runtime.default_weights) and is never dropped. Every other
network and weights a session picks (30 B blocks, paper-v2, a weights file) gets an engine built when
first asked for and kept for the next session that asks, until the engines together would hold more
than the budget: then the least recently used go first. One session sliding through ten block counts
thus holds at most the budget, not ten engines. A session still running on an engine that was dropped
keeps it until its run ends; the next run builds it again.

``EXPLORER_ENGINE_BUDGET_MB`` sets the budget (default :data:`DEFAULT_BUDGET_MB`); the engine just built
is always kept, so a budget smaller than one engine keeps exactly one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

#: About three engines of the released network on a CPU without bf16 (two fp32 copies of 224 MB each), or
#: five where the inference copy is bf16.
DEFAULT_BUDGET_MB = 1400


def _trim() -> None:
    """Hand freed memory back to the system where the C library can (glibc's malloc_trim): an engine's
    tensors are freed into the heap of whichever of Streamlit's script threads made them, and glibc keeps
    such memory for reuse by that thread's arena rather than returning it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return
    trim(0)


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


T = TypeVar("T", bound=Sized)


def budget_from_environment() -> int:
    """The budget in bytes: ``EXPLORER_ENGINE_BUDGET_MB``, or the default where it is unset or not a number."""
    text = os.environ.get("EXPLORER_ENGINE_BUDGET_MB", "")
    try:
        megabytes = float(text) if text.strip() else DEFAULT_BUDGET_MB
    except ValueError:
        megabytes = DEFAULT_BUDGET_MB
    return int(max(megabytes, 0) * 2**20)


@dataclass(frozen=True)
class PoolStats:
    keys: tuple[Hashable, ...]  # least recently used first
    nbytes: int
    budget: int
    built: int  # engines built since the start
    dropped: int  # engines dropped to stay within the budget


class EnginePool(Generic[T]):
    """Engines by key, built by ``build`` on first use, least recently used dropped beyond ``budget`` bytes.

    Thread-safe: sessions asking for one key at once wait for one build; builds of different keys run
    side by side. The sizes are read again at each call, since an engine grows when attribution first makes
    its private copy.
    """

    def __init__(self, build: Callable[[Hashable], T], budget: int | None = None) -> None:
        self._build = build
        self.budget = budget_from_environment() if budget is None else budget
        self._engines: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self._built = 0
        self._dropped = 0
        self._collected = 0  # engines dropped when the garbage was last collected

    def get(self, key: Hashable) -> T:
        """The engine for ``key``, built now if it is not held; what ``build`` raises reaches the caller."""
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                self._shrink()  # the others may have grown since
                return self._engines[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:  # one build per key; a second caller finds the first one's engine
            with self._lock:
                if key in self._engines:
                    self._engines.move_to_end(key)
                    return self._engines[key]
            self._collect()
            engine = self._build(key)
            with self._lock:
                self._engines[key] = engine
                self._built += 1
                self._building.pop(key, None)
                self._shrink()
            return engine

    def _collect(self) -> None:
        """Free the engines dropped so far before building another. A page's run keeps its engine in the
        page's namespace, which its own functions refer to: a reference cycle, so a dropped engine's
        hundreds of megabytes go only when the garbage collector next runs, which allocations of a few
        large tensors seldom trigger. Once per build (itself a second or so) costs tens of milliseconds."""
        with self._lock:
            due, self._collected = self._dropped > self._collected, self._dropped
        if due:
            gc.collect()
            _trim()

    def _shrink(self) -> None:
        """Drop the least recently used engines until the rest fit (the newest always stays)."""
        sizes = {key: engine.nbytes for key, engine in self._engines.items()}
        total = sum(sizes.values())
        while total > self.budget and len(self._engines) > 1:
            key, _ = self._engines.popitem(last=False)
            total -= sizes[key]
            self._dropped += 1

    def clear(self) -> None:
        with self._lock:
            self._engines.clear()

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                tuple(self._engines),
                sum(engine.nbytes for engine in self._engines.values()),
                self.budget,
                self._built,
                self._dropped,
            )
