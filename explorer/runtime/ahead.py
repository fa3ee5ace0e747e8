"""The pipeline's steps compiled ahead of time, in a child process, and kept on disk (AOTInductor).

torch.compile in the serving process holds its interpreter for a minute or more, and every image waits
behind it; a restart pays it again. Here a child process (``python -m explorer.runtime.ahead REQUEST``)
exports each step of :func:`~explorer.runtime.pipeline.pipeline` (each group's forward, each group's
reduction, the head) and compiles it with AOTInductor into a package; the server only loads the packages
(shared libraries) and captures them in its CUDA graph as it does the eager steps.

The packages hold no weights (``aot_inductor.package_constants_in_so`` off): an engine hands each package
its own tensors, so one build serves every set of weights of a network. A build is keyed by what its code
depends on: the torch version, the device (GPU name and compute capability, or the CPU's kernels), the
network's config, batch size, top-K, input size, precision and the source of the modules that define the
steps. Builds are written to a temporary folder and renamed when whole; a lock file keeps two engines (or
two servers) from building the same one at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import json
import multiprocessing
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

import torch
from torch import Tensor, nn

from explorer.nets import InceptionNetwork, NetworkConfig, model_from_config
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.pipeline import BlockGroup, PipelineSteps, block_groups, head_part, reduce_group

#: Seconds a build may take before it is given up (a GPU build of the released network takes minutes).
BUILD_TIMEOUT = 3600
_FORMAT = 1  # bump when the folder's layout changes
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


class BuildError(RuntimeError):
    """A build that failed, with the child's last line of output as its message."""


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
        parts = [repr(self.config), repr(settings), torch.__version__, str(_FORMAT), _device_kind(self.device)]
        return hashlib.sha256("\n".join([*parts, _source_digest()]).encode()).hexdigest()[:20]

    def folder(self, root: Path | None = None) -> Path:
        kind = torch.device(self.device).type
        name = f"{self.config.variant}-{kind}-b{self.batch_size}-{self.precision}-{self.key()}"
        return (root or cache_root()) / name


def _device_kind(device: str) -> str:
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} sm{major}{minor} cuda {torch.version.cuda}"
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


@functools.cache  # the source does not change under a running process
def _source_digest() -> str:
    """The source of what the steps are made of: the networks and the pipeline's modules."""
    package = Path(__file__).resolve().parent.parent
    files = sorted((package / "nets").glob("*.py"))
    files += [package / "runtime" / f"{name}.py" for name in ("fastpath", "pipeline", "reductions", "ahead")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


class _Reduce(nn.Module):
    """:func:`reduce_group` with its top-K fixed, as a module to export."""

    def __init__(self, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k

    def forward(self, outputs: list[Tensor], group_input: Tensor, residuals: list[Tensor]) -> Tensor:
        return reduce_group(outputs, group_input, residuals, self.top_k)


class _Head(nn.Module):
    """:func:`head_part` on the head's modules alone (the model's own, under their names in the model)."""

    forward_head = InceptionNetwork.forward_head  # the network's own head code; it uses only these modules

    def __init__(self, model: InceptionNetwork) -> None:
        super().__init__()
        for name in ("global_pool", "head_drop", "head_hidden", "classifier"):
            setattr(self, name, getattr(model, name))

    def forward(self, features: Tensor) -> Tensor:
        return head_part(self, features)  # type: ignore[arg-type]


def _parts(model: InceptionNetwork, groups: list[BlockGroup], top_k: int) -> list[tuple[str, nn.Module]]:
    reduce = _Reduce(top_k)
    named = [(f"forward-{i}", group) for i, group in enumerate(groups)]
    named += [(f"reduce-{i}", reduce) for i in range(len(groups))]
    return [*named, ("head", _Head(model))]


def build(request: Request, folder: Path, workers: int | None = None, log: Callable[[str], None] = print) -> None:
    """Export and compile every step into ``folder`` (the child's work: minutes on a GPU), the steps spread
    over ``workers`` processes (default: one per core, at most 4; the compiler runs one core each, mostly
    in the C++ compiler), the longest groups first."""
    model = _network(request)
    groups = block_groups(model)
    costs = {name: len(part.blocks) if isinstance(part, BlockGroup) else 1 for name, part in _parts(model, groups, 1)}
    workers = max(1, min(workers or os.cpu_count() or 1, 4, len(costs)))
    shares: list[list[str]] = [[] for _ in range(workers)]
    for name in sorted(costs, key=costs.get, reverse=True):  # each to the least loaded: longest first
        min(shares, key=lambda share: sum(costs[n] for n in share)).append(name)
    if workers == 1:
        _build_parts(request, folder, shares[0], log)
    else:
        log(f"compiling {len(costs)} steps in {workers} processes")
        context = multiprocessing.get_context("spawn")  # CUDA does not survive a fork
        with concurrent.futures.ProcessPoolExecutor(workers, context, _die_with_parent) as pool:
            for done in [pool.submit(_build_parts, request, folder, share) for share in shares]:
                done.result()
    log("checking the build")
    _check(request, folder, model)
    manifest = {"format": _FORMAT, "request": repr(request), "torch": torch.__version__, "groups": len(groups)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: a folder without it is unfinished


def _check(request: Request, folder: Path, model: InceptionNetwork) -> None:
    """Load the build and run it once against the eager steps, here in the child: a package that crashes its
    loader (some torch builds do) then fails the build, not the server. On a GPU it is captured as the server
    captures it."""
    from explorer.runtime.capture import CapturedPipeline
    from explorer.runtime.pipeline import pipeline

    steps = _load_packages(folder, model, request)
    size = request.input_size
    x = torch.randn(request.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(next(model.parameters()).device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = pipeline(model, x.to(request.dtype), request.top_k)[0].float()
        if x.is_cuda:
            got = torch.from_numpy(
                CapturedPipeline(model, request.batch_size, request.top_k, size, request.dtype, steps=steps)(x)
            ).to(x.device)
        else:
            got = pipeline(model, x, request.top_k, steps)[0].float()
    probabilities = slice(0, 5)  # the head's top-5, which every image's answer starts from
    if (
        got.shape != expected.shape
        or not got.isfinite().all()
        or (got[:, probabilities] - expected[:, probabilities]).abs().max() > 0.05
    ):
        raise BuildError("the compiled steps do not compute what the network does")


def _network(request: Request) -> InceptionNetwork:
    """The build's stand-in network: the engine's inference copy of the same config, seeded random weights."""
    model = inference_copy(model_from_config(request.config, seed=0)).eval().requires_grad_(False)
    return model.to(torch.device(request.device), request.dtype, memory_format=torch.channels_last)


def _build_parts(request: Request, folder: Path, names: list[str], log: Callable[[str], None] = print) -> None:
    from torch._inductor import aoti_compile_and_package

    model = _network(request)
    groups = block_groups(model)
    size = request.input_size
    x = torch.zeros(request.batch_size, 3, size, size, device=next(model.parameters()).device, dtype=request.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    examples: dict[str, tuple] = {}
    with torch.no_grad():
        for i, group in enumerate(groups):  # each step's example inputs: what the steps before it give
            outputs, residuals = group(x)
            examples[f"forward-{i}"] = (x,)
            examples[f"reduce-{i}"] = (outputs, x, residuals)
            x = outputs[-1]
        examples["head"] = (x,)
        options = {"aot_inductor.package_constants_in_so": False}  # each engine hands in its own weights
        parts = dict(_parts(model, groups, request.top_k))
        for name in names:
            log(f"compiling {name}")
            exported = torch.export.export(parts[name], examples[name], strict=False)
            aoti_compile_and_package(exported, package_path=str(folder / f"{name}.pt2"), inductor_configs=options)


def ensure_built(request: Request, root: Path | None = None) -> tuple[Path, bool]:
    """The folder of a finished build, and whether it was built now (in a child process) or found.

    Blocks while the child compiles (the calling thread waits on it without the interpreter); raises
    :class:`BuildError` with the child's last line if the build fails.
    """
    folder = request.folder(root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    failed = folder.with_name(folder.name + ".failed")
    with _locked(folder.with_name(folder.name + ".lock")):
        if (folder / "manifest.json").exists():
            return folder, False
        if failed.exists():  # the same torch, device and code failed before: it would again, minutes later
            raise BuildError(f"{failed.read_text().strip()} (an earlier build; delete {failed} to try again)")
        shutil.rmtree(folder, ignore_errors=True)  # unfinished: left by a build that was killed
        for left in folder.parent.glob(f".{folder.name}-*"):  # a killed server's build (its child died with it)
            shutil.rmtree(left, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            (work / "request.pickle").write_bytes(pickle.dumps(request))
            with open(work / "build.log", "w") as log:
                finished = subprocess.run(
                    [sys.executable, "-m", "explorer.runtime.ahead", str(work)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT,
                    cwd=Path(__file__).resolve().parent.parent.parent,
                    check=False,
                )
            if finished.returncode != 0 or not (work / "manifest.json").exists():
                lines = (work / "build.log").read_text(errors="replace").strip().splitlines()
                if finished.returncode < 0:  # a crash (a loader's segfault) prints nothing of its own
                    after = f" after “{lines[-1]}”" if lines else ""
                    reason = f"the build process died of signal {-finished.returncode}{after}"
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


def discard(request: Request, root: Path | None = None) -> None:
    """Remove a build (one that does not load), so that the next :func:`ensure_built` makes it again."""
    folder = request.folder(root)
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


def load_steps(folder: Path, model: InceptionNetwork, request: Request) -> PipelineSteps:
    """A build's packages as :class:`PipelineSteps` for ``model`` (same config; its weights are handed to them).

    The packages read the model's tensors in place (converted to the build's precision first where they
    differ); the steps keep them referenced. Runs without thread synchronisation in the packages, as
    CUDA graph capture needs: the engine already calls one at a time.
    """
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != _FORMAT or manifest.get("request") != repr(request) or model.config != request.config:
        raise BuildError(f"{folder.name} does not match this network; delete it to build again")
    return _load_packages(folder, model, request)


def _load_packages(folder: Path, model: InceptionNetwork, request: Request) -> PipelineSteps:
    from torch._inductor import aoti_load_package

    groups = block_groups(model)
    loaded = {}
    for name, part in _parts(model, groups, request.top_k):
        try:
            package = aoti_load_package(str(folder / f"{name}.pt2"), run_single_threaded=True)
        except Exception as error:  # a truncated or foreign file: torch says so in its own words
            raise BuildError(f"{name}.pt2 in {folder.name} does not load ({type(error).__name__})") from error
        state = {**dict(part.named_parameters()), **dict(part.named_buffers())}
        wanted = package.get_constant_fqns()
        missing = sorted(set(wanted) - set(state))
        if missing:
            raise BuildError(f"{name}.pt2 asks for {missing[0]}, which the network does not have")
        constants = {fqn: state[fqn].detach().to(request.dtype) for fqn in wanted}
        package.load_constants(constants, check_full_update=True, user_managed=True)
        loaded[name] = _Loaded(package, constants, request.dtype)
    return PipelineSteps(
        groups,
        [loaded[f"forward-{i}"] for i in range(len(groups))],
        [_WithoutTopK(loaded[f"reduce-{i}"]) for i in range(len(groups))],
        lambda _model, features: loaded["head"](features),
    )


class _Loaded:
    """A loaded package, with the tensors it reads kept alive and its input cast to the build's precision."""

    def __init__(self, package: Callable[..., object], constants: dict[str, Tensor], dtype: torch.dtype) -> None:
        self.package, self.constants, self.dtype = package, constants, dtype

    def __call__(self, *inputs: object) -> object:
        cast = [x.to(self.dtype) if isinstance(x, Tensor) and x.is_floating_point() else x for x in inputs]
        return self.package(*cast)


class _WithoutTopK:
    """A loaded reduction, called as :func:`reduce_group` is (its top-K was fixed at the build)."""

    def __init__(self, loaded: _Loaded) -> None:
        self.loaded = loaded

    def __call__(self, outputs: list[Tensor], group_input: Tensor, residuals: list[Tensor], top_k: int) -> Tensor:
        return self.loaded(outputs, group_input, residuals)  # type: ignore[return-value]


def _die_with_parent() -> None:
    """Linux: end when the process that started this one ends (a server stopped mid-build leaves no
    orphan compiling for nobody); its folder is then removed by the next build."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _main(work: Path) -> None:
    _die_with_parent()
    os.nice(10)  # the server's threads (images, downloads) come first on the CPU
    request = pickle.loads((work / "request.pickle").read_bytes())  # written by ensure_built, our own parent
    build(request, work, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
