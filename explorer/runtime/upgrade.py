"""From plain kernels to compiled ones on whatever torch the server meets: the ways, tried in order, and
what worked remembered.

1. ``ahead``: AOTInductor packages built by a child process (explorer.runtime.ahead), where they load;
2. ``handed``: torch.compile run by a child process into the shared Inductor cache
   (explorer.runtime.handover), then here from that warm cache;
3. ``here``: torch.compile here, from whatever the cache holds (a minute or two of the interpreter);

and plain kernels when all three fail, with one line per way saying why. Where nothing is known yet, the
second way's child starts beside the first's, so that a failure of the first costs no extra wait. Every way
ends the same: compiled :class:`PipelineSteps` handed to the caller's ``make`` (the GPU runner captures them
as a CUDA graph; on a CPU they are checked against the eager pipeline), so the same code runs in tests on the
CPU.

What worked is remembered per torch, device and network (``paths/`` beside the builds), so that a restart,
or another batch size, goes straight to it; what failed is not tried again until its file is deleted.
``EXPLORER_COMPILE`` can pin one way (``ahead``, ``handed``, ``here``; ``thread`` is ``here``) or none (``0``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch

from explorer.nets import InceptionNetwork
from explorer.runtime import ahead, handover
from explorer.runtime.builds import (
    BuildError,
    EarlierFailure,
    Request,
    cache_root,
    device_kind,
    discard,
    ensure_built,
    source_digest,
)
from explorer.runtime.pipeline import PipelineSteps
from explorer.text.messages import first_line

T = TypeVar("T")
R = TypeVar("R")
#: The ways to compiled kernels, in the order they are tried, and how the console and the app name them.
WAYS = {
    "ahead": "compiling ahead of time (AOTInductor packages, in a child process)",
    "handed": "compiling in a child process (torch.compile, then here from its cache)",
    "here": "compiling here (torch.compile in this process)",
}
_PINNED = {"ahead": "ahead", "handed": "handed", "here": "here", "thread": "here"}


def compile_setting(value: str | None = None) -> list[str]:
    """The ways ``EXPLORER_COMPILE`` allows: every one (unset, ``1``, ``auto``), one pinned, or none (``0``)."""
    value = (os.environ.get("EXPLORER_COMPILE", "auto") if value is None else value).strip().lower()
    if value in ("0", "off", "no"):
        return []
    return [_PINNED[value]] if value in _PINNED else list(WAYS)


@dataclass(frozen=True)
class Upgrade(Generic[T]):
    """How an upgrade ended: the way that worked (or ``"plain"``), what ``make`` made of it, one line per way
    that failed (now or, remembered, before), whether a child process built it now, and the seconds it took."""

    way: str
    made: T | None
    failures: tuple[str, ...]
    built: bool
    seconds: float

    @property
    def notes(self) -> tuple[str, ...]:
        """What every result says when no way worked: each way's failure, then what runs instead."""
        if self.made is not None:
            return ()
        return (*self.failures, "running uncompiled kernels") if self.failures else ()


class Memory:
    """What worked, and what failed, for one torch, device and network: a small JSON file beside the builds."""

    def __init__(self, request: Request, root: Path | None = None, purpose: str = "pipeline") -> None:
        self.device = device_kind(request.device)
        parts = [torch.__version__, self.device, repr(request.config), source_digest()]
        digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        name = request.config.variant if purpose == "pipeline" else f"{request.config.variant}-{purpose}"
        self.path = (root or cache_root()) / "paths" / f"{name}-{digest}.json"

    def read(self) -> tuple[str | None, dict[str, str]]:
        """The way that worked last (None: none did, or never tried) and each failed way's reason."""
        try:
            record = json.loads(self.path.read_text())
            return record.get("worked"), dict(record.get("failed", {}))
        except (OSError, ValueError, AttributeError):  # never written, or not ours to trust: tried afresh
            return None, {}

    def write(self, worked: str | None, failed: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"worked": worked, "failed": failed, "torch": torch.__version__, "device": self.device}
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(record, handle, indent=1)
        os.replace(handle.name, self.path)  # whole or not at all: two servers may write it at once

    def order(self, allowed: list[str]) -> tuple[list[str], dict[str, str]]:
        """The ways to try, in order (the one that worked first), and those skipped for having failed before."""
        worked, failed = self.read()
        if len(allowed) == 1:  # pinned: tried whatever happened before
            return allowed, {}
        skipped = {way: reason for way, reason in failed.items() if way in allowed and way != worked}
        rest = [way for way in allowed if way != worked and way not in skipped]
        return ([worked] if worked in allowed else []) + rest, skipped


def upgrade(
    model: InceptionNetwork,
    request: Request,
    make: Callable[[PipelineSteps], T],
    allowed: list[str] | None = None,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
    wanted: Callable[[], bool] = lambda: True,
) -> Upgrade[T]:
    """Try each allowed way in order until one gives compiled steps that ``make`` accepts; remember the outcome.

    Blocks for as long as the compiling takes (minutes): call it on a thread of its own. ``make`` is called
    on this thread with the compiled steps (their first calls compile, from a warm cache where a child did the
    work; one compile at a time in a process, as torch.compile needs); anything it raises counts as that way's
    failure. Once ``wanted()`` is false (an engine nobody will use) it stops before compiling anything more,
    with way ``"dropped"``, and remembers nothing.
    """
    log = log or (lambda line: None)
    allowed = compile_setting() if allowed is None else allowed
    start = time.perf_counter()
    handover.share_inductor_cache(root)  # before anything compiles, here or in a child
    memory = Memory(request, root)
    order, skipped = memory.order(allowed)
    failures = {way: f"{reason} (before; delete {memory.path} to try again)" for way, reason in skipped.items()}
    for way in skipped:
        log(f"{WAYS[way]} failed before: {skipped[way]}")
    new: dict[str, str] = {}
    ways = _Ways(model, request, make, root, log, wanted)
    if order[:2] == ["ahead", "handed"]:  # not known to work yet: the next way's child starts beside the first's
        ways.start_handed()
    for way in order:
        try:
            made, built = getattr(ways, way)()
        except _Dropped:
            return Upgrade("dropped", None, (), False, time.perf_counter() - start)
        except Exception as error:  # compilers and loaders fail in many ways; the next way may not
            if not wanted():  # nobody will be served by it: its failure is not worth a line, nor remembering
                return Upgrade("dropped", None, (), False, time.perf_counter() - start)
            new[way] = error.reason if isinstance(error, EarlierFailure) else first_line(error)
            log(f"{WAYS[way]} failed: {new[way]}")
            continue
        if len(allowed) > 1:
            memory.write(way, new | skipped)
        return Upgrade(way, made, _lines(new, failures), built, time.perf_counter() - start)
    if len(allowed) > 1 and new:
        memory.write(None, new | skipped)
    return Upgrade("plain", None, _lines(new, failures), False, time.perf_counter() - start)


def _lines(new: dict[str, str], before: dict[str, str]) -> tuple[str, ...]:
    failed = before | new
    return tuple(f"{WAYS[way]} failed: {failed[way]}" for way in WAYS if way in failed)


def compiled_or_plain(
    run: Callable[[bool], R], memory: Memory, required: bool = False, log: Callable[[str], None] | None = None
) -> R:
    """``run(True)``, work that torch.compiles in this process as it goes (an index), or, where compiling fails
    and is not ``required``, ``run(False)``, said in one line. The outcome is remembered (``memory``), so that
    after a failure the next run goes straight to plain kernels; the Inductor cache beside the builds is shared,
    so that a later run compiles warm. A failure that is not the compiler's is raised, as is one when
    ``required``."""
    log = log or (lambda line: None)
    handover.share_inductor_cache()
    worked, failed = memory.read()
    if not required and worked is None and "here" in failed:
        log(f"{WAYS['here']} failed before: {failed['here']} (delete {memory.path} to try again); plain kernels")
        return run(False)
    try:
        result = run(True)
    except Exception as error:
        if not _from_compiler(error):
            raise
        if required:  # one line, as any command's error
            raise RuntimeError(f"torch.compile failed: {first_line(error)}") from error
        memory.write(None, {"here": first_line(error)})
        log(f"{WAYS['here']} failed: {first_line(error)}; plain kernels")
        return run(False)
    memory.write("here", {})
    return result


def _from_compiler(error: BaseException | None) -> bool:
    """Whether an error (or one it came from) was raised by torch.compile's Dynamo or Inductor."""
    while error is not None:
        if type(error).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return True
        error = error.__cause__
    return False


class _Dropped(Exception):
    """The upgrade is no longer wanted."""


#: torch.compile is not safe to run on two threads at once (two engines' upgrades, say): one at a time.
_COMPILING = threading.Lock()


class _Ways(Generic[T]):
    """Each way for one upgrade: what ``make`` made of its compiled steps, and whether a child built them now."""

    def __init__(
        self,
        model: InceptionNetwork,
        request: Request,
        make: Callable[[PipelineSteps], T],
        root: Path | None,
        log: Callable[[str], None],
        wanted: Callable[[], bool],
    ) -> None:
        self.model, self.request, self.make, self.root, self.log, self.wanted = model, request, make, root, log, wanted
        # A build that failed before this upgrade began is tried again (what failed is remembered, and skipped,
        # by Memory: to be here, it was forgotten); one that fails while this waits is another server's, not.
        self.started = time.time()
        self.handed_build: Future[tuple[Path, bool]] | None = None

    def _built(self, kind: str) -> tuple[Path, bool]:
        if not self.wanted():
            raise _Dropped
        return ensure_built(self.request, self.root, kind, retry_before=self.started)

    def _compiled(self, steps: PipelineSteps) -> T:
        with _COMPILING:
            if not self.wanted():
                raise _Dropped
            return self.make(steps)

    def start_handed(self) -> None:
        """Start the handed build's child now, beside the AOTInductor one: where packages crash (torch 2.11),
        the server then waits for the slower of the two children, not for both one after the other."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="explorer-handed-build")
        self.handed_build = pool.submit(self._built, "handed")
        pool.shutdown(wait=False)

    def ahead(self) -> tuple[T, bool]:
        folder, built = self._built("ahead")
        try:
            steps = ahead.load_steps(folder, self.model, self.request)
        except BuildError:
            discard(self.request, self.root, "ahead")  # damaged: built again next time
            raise
        return self._compiled(steps), built

    def handed(self) -> tuple[T, bool]:
        early = self.handed_build
        folder, built = early.result() if early is not None else self._built("handed")
        try:
            handover.verify(folder, self.request)
        except handover.DamagedCache as damage:  # rebuilt, never compiled from: the child writes them again
            self.log(f"{damage}: building it again")
            discard(self.request, self.root, "handed")
            folder, built = self._built("handed")
            handover.adopt(folder, damage.intact)
            handover.verify(folder, self.request)
        return self._compiled(PipelineSteps.compiled(self.model)), built

    def here(self) -> tuple[T, bool]:
        return self._compiled(PipelineSteps.compiled(self.model)), False
