"""The pipeline's steps compiled ahead of time, in a child process, and kept on disk (AOTInductor).

torch.compile in the serving process holds its interpreter for a minute or more, and every image waits
behind it; a restart pays it again. Here a child process (explorer.runtime.builds) exports each step of
:func:`~explorer.runtime.pipeline.pipeline` (each group's forward, each group's reduction, the head) and
compiles it with AOTInductor into a package; the server only loads the packages (shared libraries) and
captures them in its CUDA graph as it does the eager steps.

The packages hold no weights (``aot_inductor.package_constants_in_so`` off): an engine hands each package
its own tensors, so one build serves every set of weights of a network. Some torch builds crash the process
that loads a package (torch 2.11 with CUDA 13, even an ``nn.Linear``'s): the head's package is built and
loaded first, so that there the build fails within seconds, not after minutes of compiling the rest, and
the server moves on to explorer.runtime.handover.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from explorer.nets import InceptionNetwork
from explorer.runtime.builds import FORMAT, BuildError, Request, check, die_with_parent, stand_in
from explorer.runtime.pipeline import BlockGroup, PipelineSteps, block_groups, head_part, pipeline, reduce_group


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
    in the C++ compiler), the longest groups first; meanwhile the head here, loaded as soon as it is built."""
    # Its own Inductor cache: the packages hold all the server needs, and a handed build's child, compiling into
    # the shared cache at the same time, lists what it wrote there (explorer.runtime.handover) without these.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder.parent / "inductor-ahead")
    model = stand_in(request)
    groups = block_groups(model)
    _examples(request, model, groups)  # fails at once for an input the network cannot take
    costs = {name: len(part.blocks) if isinstance(part, BlockGroup) else 1 for name, part in _parts(model, groups, 1)}
    del costs["head"]  # built here, while the pool builds the rest
    workers = max(1, min(workers or os.cpu_count() or 1, 4, len(costs)))
    shares: list[list[str]] = [[] for _ in range(workers)]
    for name in sorted(costs, key=costs.get, reverse=True):  # each to the least loaded: longest first
        min(shares, key=lambda share: sum(costs[n] for n in share)).append(name)
    log(f"compiling {len(costs) + 1} steps in {workers + 1} processes")
    context = multiprocessing.get_context("spawn")  # CUDA does not survive a fork
    with concurrent.futures.ProcessPoolExecutor(workers, context, die_with_parent) as pool:
        done = [pool.submit(_build_parts, request, folder, share) for share in shares]
        log("checking that compiled packages load here (the head's)")
        examples = _build_parts(request, folder, ["head"], log=lambda _line: None)
        _probe(folder, model, examples["head"])  # a crash here takes the pool with it (die_with_parent)
        log("compiling the other steps")
        for part in done:
            part.result()
    log("checking the build")
    _check(request, folder, model)
    manifest = {"format": FORMAT, "request": repr(request), "torch": torch.__version__, "groups": len(groups)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: a folder without it is unfinished


def _probe(folder: Path, model: InceptionNetwork, example: tuple) -> None:
    """Load the head's package and run it: where the loader crashes, it takes this process with it, now."""
    from torch._inductor import aoti_load_package

    package = aoti_load_package(str(folder / "head.pt2"), run_single_threaded=True)
    head = _Head(model)
    state = {**dict(head.named_parameters()), **dict(head.named_buffers())}
    package.load_constants({f: state[f].detach() for f in package.get_constant_fqns()}, check_full_update=True)
    with torch.no_grad():
        package(*example)


def _check(request: Request, folder: Path, model: InceptionNetwork) -> None:
    """Load the build and run it once against the eager steps (on a GPU captured as the server captures it)."""
    from explorer.runtime.capture import CapturedPipeline

    steps = _load_packages(folder, model, request)
    size = request.input_size

    def rows(x: Tensor) -> object:
        if x.is_cuda:
            return CapturedPipeline(model, request.batch_size, request.top_k, size, request.dtype, steps=steps)(x)
        return pipeline(model, x, request.top_k, steps)[0]

    check(request, model, rows)


def _examples(request: Request, model: InceptionNetwork, groups: list[BlockGroup]) -> dict[str, tuple]:
    """Each step's example inputs: what the steps before it give (an eager forward: an input the network cannot
    take fails here, in a second, before any process is started or anything compiled)."""
    size = request.input_size
    x = torch.zeros(request.batch_size, 3, size, size, device=next(model.parameters()).device, dtype=request.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    examples: dict[str, tuple] = {}
    with torch.no_grad():
        for i, group in enumerate(groups):
            outputs, residuals = group(x)
            examples[f"forward-{i}"] = (x,)
            examples[f"reduce-{i}"] = (outputs, x, residuals)
            x = outputs[-1]
    examples["head"] = (x,)
    return examples


def _build_parts(
    request: Request, folder: Path, names: list[str], log: Callable[[str], None] = print
) -> dict[str, tuple]:
    """Compile the steps ``names`` into packages in ``folder``; every step's example inputs."""
    from torch._inductor import aoti_compile_and_package

    model = stand_in(request)
    groups = block_groups(model)
    examples = _examples(request, model, groups)
    options = {
        "aot_inductor.package_constants_in_so": False,  # each engine hands in its own weights
        # The wrapper only launches the kernels (compiled -O3 apart) and a CUDA graph replays them without it;
        # at -O0 its C++ compiles in about a quarter less CPU (docs/design/tests.md).
        "aot_inductor.compile_wrapper_opt_level": "O0",
    }
    parts = dict(_parts(model, groups, request.top_k))
    with torch.no_grad():
        for name in names:
            log(f"compiling {name}")
            exported = torch.export.export(parts[name], examples[name], strict=False)
            aoti_compile_and_package(exported, package_path=str(folder / f"{name}.pt2"), inductor_configs=options)
    return examples


def load_steps(folder: Path, model: InceptionNetwork, request: Request) -> PipelineSteps:
    """A build's packages as :class:`PipelineSteps` for ``model`` (same config; its weights are handed to them).

    The packages read the model's tensors in place (converted to the build's precision first where they
    differ); the steps keep them referenced. Runs without thread synchronisation in the packages, as
    CUDA graph capture needs: the engine already calls one at a time.
    """
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != FORMAT or manifest.get("request") != repr(request) or model.config != request.config:
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
