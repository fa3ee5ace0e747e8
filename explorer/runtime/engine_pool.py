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

import contextlib
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from explorer.runtime.memory import MemoryBudget, release_freed

#: About three engines of the released network on a CPU without bf16 (two fp32 copies of 224 MB each), or
#: five where the inference copy is bf16.
DEFAULT_BUDGET_MB = 1400


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

    def __init__(
        self, build: Callable[[Hashable], T], budget: int | None = None, memory: MemoryBudget | None = None
    ) -> None:
        self._build = build
        self.budget = budget_from_environment() if budget is None else budget
        self._engines: OrderedDict[Hashable, T] = OrderedDict()
        self._used: dict[Hashable, float] = {}
        self._memory = memory  # the server's budget, over the caches too
        if memory is not None:
            memory.join(self)
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self._built = 0
        self._dropped = 0
        self._collected = 0  # engines dropped when the garbage was last collected
        self._build_slot = threading.Lock()
        self._retired: list[weakref.ref] = []  # dropped engines, while a run still holds them
        self._largest = 0  # the largest engine built so far: the room made before the next build

    def get(self, key: Hashable) -> T:
        """The engine for ``key``, built now if it is not held; what ``build`` raises reaches the caller."""
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                self._used[key] = time.monotonic()
                self._shrink()  # the others may have grown since
                engine = self._engines[key]
            else:
                gate = self._building.setdefault(key, threading.Lock())
                engine = None
        if engine is not None:
            self._within_memory(key)
            return engine
        with gate:  # one build per key; a second caller finds the first one's engine
            with self._lock:
                if key in self._engines:
                    self._engines.move_to_end(key)
                    return self._engines[key]
            # One build at a time, after room is made for it: builds side by side gain nothing on the cores
            # they share and would each hold an engine outside the budget until done.
            with self._build_slot:
                if self._memory is not None:  # a build holds about twice its engine at its height (the model
                    self._memory.enforce(reserve=2 * self._largest)  # and its inference copy, side by side)
                self._collect()
                engine = self._build(key)
                release_freed()  # the build's passing copies, back to the system before anyone runs
            with self._lock:
                self._engines[key] = engine
                self._used[key] = time.monotonic()
                self._largest = max(self._largest, engine.nbytes)
                self._built += 1
                self._building.pop(key, None)
                self._shrink()
        self._within_memory(key)
        return engine

    def _within_memory(self, key: Hashable) -> None:
        if self._memory is not None:
            self._memory.enforce(keep=(self, key))

    def entries(self) -> list[tuple[float, int, Hashable]]:
        """For the server's memory budget: every engine held, and those dropped that a run still holds (they
        cannot be dropped again, but what else is held makes room for them)."""
        with self._lock:
            held = [(self._used.get(key, 0.0), engine.nbytes, key) for key, engine in self._engines.items()]
            self._retired = [ref for ref in self._retired if ref() is not None]
            return held + [(0.0, ref().nbytes, ("dropped, still running", id(ref))) for ref in self._retired]

    def drop(self, key: Hashable) -> bool:
        """Drop an engine, but never the newest: the one just built or asked for always stays."""
        with self._lock:
            if key not in self._engines or key == next(reversed(self._engines)):
                return False
            self._retire(self._engines.pop(key))
            self._used.pop(key, None)
            self._dropped += 1
            return True

    def _retire(self, engine: T) -> None:
        with contextlib.suppress(TypeError):  # an object without weak references (tests' stand-ins)
            self._retired.append(weakref.ref(engine))

    def _collect(self) -> None:
        """Free the engines dropped so far before building another. A page's run keeps its engine in the
        page's namespace, which its own functions refer to: a reference cycle, so a dropped engine's
        hundreds of megabytes go only when the garbage collector next runs, which allocations of a few
        large tensors seldom trigger. Once per build (itself a second or so) costs tens of milliseconds."""
        with self._lock:
            due, self._collected = self._dropped > self._collected, self._dropped
        if due:
            release_freed()

    def _shrink(self) -> None:
        """Drop the least recently used engines until the rest fit (the newest always stays)."""
        sizes = {key: engine.nbytes for key, engine in self._engines.items()}
        total = sum(sizes.values())
        while total > self.budget and len(self._engines) > 1:
            key, engine = self._engines.popitem(last=False)
            self._retire(engine)
            self._used.pop(key, None)
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
