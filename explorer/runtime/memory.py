"""One memory budget over everything a server keeps for its sessions beyond its default engine: the engines of
other settings, and every cache of results and pictures.

Each holder (an :class:`~explorer.runtime.engine_pool.EnginePool`, a :class:`SizedCache`, the gallery of
feature visualisations) lists its entries with their size and last use; when what they hold together passes the
budget, the least recently used entries go first, whichever holder keeps them, until it fits again. What was
just made stays, so a budget smaller than one result still shows that result.

``EXPLORER_MEMORY_BUDGET_MB`` sets the budget (default :data:`DEFAULT_BUDGET_MB`). A server's resident memory
is then about what it holds after its first result, plus the budget, plus what Python and the allocators keep
(docs/howto/serving.md: a benchmark measures it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np
import torch

#: Two engines of the released network beside the default one, and some hundreds of megabytes of results.
DEFAULT_BUDGET_MB = 2048


def budget_from_environment() -> int:
    """``EXPLORER_MEMORY_BUDGET_MB`` in bytes, or the default where it is unset or not a number."""
    text = os.environ.get("EXPLORER_MEMORY_BUDGET_MB", "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_BUDGET_MB
    except ValueError:
        megabytes = DEFAULT_BUDGET_MB
    return int(max(megabytes, 0) * 2**20)


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


def release_freed() -> None:
    """Free what was dropped now: a page's run keeps its engine in the page's namespace, which its own
    functions refer to, a reference cycle that goes only when the garbage collector runs (large tensors seldom
    trigger it); then hand the freed memory back to the system. Tens of milliseconds."""
    gc.collect()
    _trim()


class Holder(Protocol):
    def entries(self) -> list[tuple[float, int, Hashable]]:
        """(last use, bytes, key) of each entry held."""
        ...

    def drop(self, key: Hashable) -> bool:
        """Drop an entry; False where the holder keeps it (an engine pool's newest engine)."""
        ...


def nbytes_of(value: Any, seen: set[int] | None = None) -> int:
    """About the bytes a value holds: arrays, tensors and byte strings exactly, containers and dataclasses by
    their parts, anything else by ``sys.getsizeof``."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(nbytes_of(k, seen) + nbytes_of(v, seen) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sys.getsizeof(value) + sum(nbytes_of(item, seen) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes_of(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return sys.getsizeof(value)


class MemoryBudget:
    """The server's budget, shared by the holders that :meth:`join` it."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget_from_environment() if budget is None else budget
        self._holders: list[Holder] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def join(self, holder: Holder) -> None:
        with self._lock:
            self._holders.append(holder)

    def held(self) -> int:
        with self._lock:
            holders = list(self._holders)
        return sum(nbytes for holder in holders for _, nbytes, _ in holder.entries())

    def enforce(self, keep: tuple[Holder, Hashable] | None = None, reserve: int = 0) -> None:
        """Drop the least recently used entries until what is held fits (never ``keep``: what was just made),
        with ``reserve`` bytes to spare for what is about to be made."""
        with self._lock:
            listed = [(used, nbytes, holder, key) for holder in self._holders for used, nbytes, key in holder.entries()]
            total = sum(entry[1] for entry in listed) + reserve
            freed = False
            for _, nbytes, holder, key in sorted(listed, key=lambda entry: entry[0]):
                if total <= self.budget:
                    break
                if keep is not None and keep[0] is holder and keep[1] == key:
                    continue
                if holder.drop(key):
                    total -= nbytes
                    self.dropped += 1
                    freed = True
        if freed:
            release_freed()


class SizedCache:
    """Results by key, each made once (callers asking for one key at once wait for one making), within a
    :class:`MemoryBudget` with every other holder. Values are shared read-only by every session."""

    def __init__(self, memory: MemoryBudget) -> None:
        self._memory = memory
        self._values: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        memory.join(self)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        found = self._look(key)
        if found is not _MISSING:
            return found
        with self._lock:
            gate = self._making.setdefault(key, threading.Lock())
        with gate:
            found = self._look(key)
            if found is not _MISSING:
                return found
            value = make()
            with self._lock:
                self._values[key] = (value, nbytes_of(value), time.monotonic())
                self._making.pop(key, None)
        self._memory.enforce(keep=(self, key))
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def _look(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._values:
                return _MISSING
            value, nbytes, _ = self._values.pop(key)
            self._values[key] = (value, nbytes, time.monotonic())
            return value

    def entries(self) -> list[tuple[float, int, Hashable]]:
        with self._lock:
            return [(used, nbytes, key) for key, (_, nbytes, used) in self._values.items()]

    def drop(self, key: Hashable) -> bool:
        with self._lock:
            return self._values.pop(key, None) is not None


_MISSING = object()
