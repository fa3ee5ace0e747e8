"""The small network's build ahead of time that tests/runtime/test_ahead.py checks: one build a session, in a
child process (85-100 s of C++ compiling on 2 cores), removed when the session ends.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import torch

from explorer.nets import build_model
from explorer.runtime.builds import Request, ensure_built
from explorer.runtime.fastpath import inference_copy

SIZE = 139  # a small input: a build is per input size, and any size the network's strides take will do


def network(seed: int, repeats: tuple[int, int, int] = (1, 1, 1)) -> torch.nn.Module:
    model = inference_copy(build_model("paper-v2", seed=seed, repeats=repeats)).eval().requires_grad_(False)
    return model.to(memory_format=torch.channels_last)


class Build:
    """One build into a folder of its own, on a thread that waits for the child process."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="explorer-ahead-"))
        self.request = Request(network(seed=0).config, "cpu", 1, 8, SIZE, "fp32")
        self._outcome: tuple[Path, bool] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-ahead-build", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = ensure_built(self.request, self.root)
        except BaseException as error:  # handed to the test that waits for it
            self._outcome = error

    def result(self) -> tuple[Path, bool]:
        self._thread.join()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        return self._outcome

    def remove(self) -> None:
        self._thread.join()
        shutil.rmtree(self.root, ignore_errors=True)


_build: Build | None = None


def start() -> None:
    global _build
    _build = Build()


def current() -> Build:
    if _build is None:
        start()
    assert _build is not None
    return _build
