"""Compiled pipelines built in a child process and kept on disk: what every kind of build shares.

A build is the work of a child process (``python -m explorer.runtime.builds FOLDER``) for one
:class:`Request`: a network's config on one kind of device, at one batch size, top-K, input size and
precision. Two kinds exist: ``"ahead"`` (explorer.runtime.ahead: AOTInductor packages the server loads)
and ``"handed"`` (explorer.runtime.handover: torch.compile run in the child into the Inductor cache
the server then compiles from). Either way the server's interpreter only waits on a process.

A build is keyed by what its code depends on: the torch version, the device (GPU name and compute
capability, or the CPU's kernels), the request and the source of the modules that define the steps.
It is written to a temporary folder and renamed when whole; a lock file keeps two engines (or two
servers) from building the same one at once, and a build that failed leaves a ``.failed`` file with its
reason, so that it is not tried again, minutes later, for the same answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import importlib
import os
import pickle
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from explorer.nets import InceptionNetwork, NetworkConfig, model_from_config
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.pipeline import pipeline

#: Seconds a build may take before it is given up (a GPU build of the released network takes minutes).
BUILD_TIMEOUT = 3600
FORMAT = 1  # bump when a build folder's layout changes
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
#: Each kind of build and the module whose ``build(request, folder, log)`` the child runs.
KINDS = {"ahead": "explorer.runtime.ahead", "handed": "explorer.runtime.handover"}
_STEP = "step: "  # how a build's own lines start in its log


class BuildError(RuntimeError):
    """A build that failed, with the child's last line of output as its message."""


class EarlierFailure(BuildError):
    """A build not tried because the same one failed before (another server's, perhaps a moment ago): ``reason``."""

    def __init__(self, reason: str, marker: Path) -> None:
        super().__init__(f"{reason} (an earlier build; delete {marker} to try again)")
        self.reason = reason


def cache_root() -> Path:
    """Where builds are kept: ``EXPLORER_COMPILE_CACHE``, else the user's cache folder."""
    configured = os.environ.get("EXPLORER_COMPILE_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "irv2-explorer" / "compiled"


@dataclass(frozen=True)
class Request:
    """One build: a network (its config; random weights stand in for any) on one kind of device."""

    config: NetworkConfig
    device: str  # "cuda" or "cpu"
    batch_size: int
    top_k: int
    input_size: int
    precision: str  # "bf16" or "fp32"

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]

    def key(self) -> str:
        """Everything the compiled code depends on, digested (the device by its kind: "cuda" and "cuda:0"
        of one GPU share a build)."""
        settings = (self.batch_size, self.top_k, self.input_size, self.precision)
        parts = [repr(self.config), repr(settings), torch.__version__, str(FORMAT), device_kind(self.device)]
        return hashlib.sha256("\n".join([*parts, source_digest()]).encode()).hexdigest()[:20]

    def folder(self, root: Path | None = None, kind: str = "ahead") -> Path:
        """The folder of this request's build of ``kind`` (an AOTInductor build's name carries no kind)."""
        device = torch.device(self.device).type
        name = f"{self.config.variant}-{device}-b{self.batch_size}-{self.precision}-{self.key()}"
        return (root or cache_root()) / (name if kind == "ahead" else f"{name}-{kind}")


def device_kind(device: str) -> str:
    """The device as compiled code depends on it: a GPU's name, compute capability and CUDA, or the CPU's kernels."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} sm{major}{minor} cuda {torch.version.cuda}"
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


@functools.cache  # the source does not change under a running process
def source_digest() -> str:
    """The source of what the steps are made of: the networks and the pipeline's modules."""
    package = Path(__file__).resolve().parent.parent
    files = sorted((package / "nets").glob("*.py"))
    names = ("fastpath", "pipeline", "reductions", "capture", "builds", "ahead", "handover")
    files += [package / "runtime" / f"{name}.py" for name in names]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def stand_in(request: Request) -> InceptionNetwork:
    """The build's network: the engine's inference copy of the same config, seeded random weights."""
    model = inference_copy(model_from_config(request.config, seed=0)).eval().requires_grad_(False)
    return model.to(torch.device(request.device), request.dtype, memory_format=torch.channels_last)


def check(request: Request, model: InceptionNetwork, rows: Callable[[Tensor], Tensor | np.ndarray]) -> None:
    """Run the compiled pipeline (``rows``) once against the eager one, here in the child: a build that crashes
    or computes something else then fails the build, not the server."""
    size = request.input_size
    x = torch.randn(request.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(next(model.parameters()).device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = pipeline(model, x.to(request.dtype), request.top_k)[0].float()
        got = torch.as_tensor(rows(x)).to(x.device).float()
    probabilities = slice(0, 5)  # the head's top-5, which every image's answer starts from
    if (
        got.shape != expected.shape
        or not got.isfinite().all()
        or (got[:, probabilities] - expected[:, probabilities]).abs().max() > 0.05
    ):
        raise BuildError("the compiled steps do not compute what the network does")


def ensure_built(
    request: Request, root: Path | None = None, kind: str = "ahead", retry_before: float | None = None
) -> tuple[Path, bool]:
    """The folder of a finished build of ``kind``, and whether it was built now (in a child process) or found.

    Blocks while the child compiles (the calling thread waits on it without the interpreter); raises
    :class:`BuildError` with the child's last line if the build fails, :class:`EarlierFailure` if it failed
    before, unless that was before ``retry_before`` (a time.time()): then it is tried again.
    """
    folder = request.folder(root, kind)
    folder.parent.mkdir(parents=True, exist_ok=True)
    failed = folder.with_name(folder.name + ".failed")
    with _locked(folder.with_name(folder.name + ".lock")):
        if (folder / "manifest.json").exists():
            return folder, False
        if failed.exists() and retry_before is not None and failed.stat().st_mtime < retry_before:
            failed.unlink()
        if failed.exists():  # the same torch, device and code failed before: it would again, minutes later
            raise EarlierFailure(failed.read_text().strip(), failed)
        shutil.rmtree(folder, ignore_errors=True)  # unfinished: left by a build that was killed
        for left in folder.parent.glob(f".{folder.name}.work-*"):  # a killed server's build (its child died with it)
            shutil.rmtree(left, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.work-", dir=folder.parent))
        try:
            (work / "request.pickle").write_bytes(pickle.dumps((kind, request)))
            with open(work / "build.log", "w") as log:
                finished = subprocess.run(
                    [sys.executable, "-m", "explorer.runtime.builds", str(work)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT,
                    cwd=Path(__file__).resolve().parent.parent.parent,
                    check=False,
                )
            if finished.returncode != 0 or not (work / "manifest.json").exists():
                lines = (work / "build.log").read_text(errors="replace").strip().splitlines()
                if finished.returncode < 0:  # a crash (a loader's segfault) prints nothing of its own
                    steps = [line.removeprefix(_STEP) for line in lines if line.startswith(_STEP)]
                    after = f" after “{steps[-1]}”" if steps else ""
                    name = signal.Signals(-finished.returncode).name
                    reason = f"the build process died of signal {-finished.returncode} ({name}){after}"
                else:
                    reason = lines[-1] if lines else f"the build exited with status {finished.returncode}"
                if finished.returncode != -signal.SIGTERM:  # stopped with its server: not a failure of the build
                    failed.write_text(reason + "\n")
                raise BuildError(reason)
            (work / "request.pickle").unlink()
            os.replace(work, folder)
        except subprocess.TimeoutExpired as error:
            raise BuildError(f"the build took over {BUILD_TIMEOUT} s") from error
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return folder, True


def discard(request: Request, root: Path | None = None, kind: str = "ahead") -> None:
    """Remove a build (one that does not load), so that the next :func:`ensure_built` makes it again."""
    folder = request.folder(root, kind)
    with _locked(folder.with_name(folder.name + ".lock")):
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits without the interpreter while another build runs
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def die_with_parent() -> None:
    """Linux: end when the process that started this one ends (a server stopped mid-build leaves no
    orphan compiling for nobody); its folder is then removed by the next build."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _main(work: Path) -> None:
    die_with_parent()
    os.nice(10)  # the server's threads (images, downloads) come first on the CPU
    kind, request = pickle.loads((work / "request.pickle").read_bytes())  # written by ensure_built, our parent
    # The build's own lines are marked: a crash's reason names the last of them, not a library's warning after it.
    importlib.import_module(KINDS[kind]).build(request, work, log=lambda line: print(_STEP + line, flush=True))


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
