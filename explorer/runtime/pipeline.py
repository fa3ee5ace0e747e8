"""Every block's maps and statistics in one pass, packed into one buffer: the GPU's way and the CPU's, side by side.

:func:`pipeline` (the GPU's) runs the network group by group (a run of residual blocks, or one other block)
and reduces each group's outputs stacked, as one batch, on a second CUDA stream while the next group runs;
:func:`streamed_pipeline` (the CPU's) reduces each block's output as soon as it exists. Both pack the same
numbers in the same layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from explorer.nets import InceptionNetwork, InceptionResNetBlock
from explorer.runtime.packing import Layout
from explorer.runtime.reductions import reduce_block


class BlockGroup(nn.Module):
    """Consecutive blocks of a model whose maps are reduced together: a run of residual blocks
    (one shape, since a residual block keeps its input's shape), or a single other block.

    Holds the model's own block modules (nothing is copied); calling it runs them in order and
    returns each block's output and, for residual blocks, each scaled residual branch.
    """

    def __init__(self, blocks: Sequence[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.names = [name for name, _ in blocks]
        self.blocks = nn.ModuleList(block for _, block in blocks)
        self.residual = isinstance(self.blocks[0], InceptionResNetBlock)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        outputs, residuals = [], []
        for block in self.blocks:
            if self.residual:
                x, residual = block.forward_parts(x)
                residuals.append(residual)
            else:
                x = block(x)
            outputs.append(x)
        return outputs, residuals


def block_groups(model: InceptionNetwork) -> list[BlockGroup]:
    """The model's blocks in forward order, cut into :class:`BlockGroup` s."""
    runs: list[list[tuple[str, nn.Module]]] = []
    for name, block in model.blocks():
        residual = isinstance(block, InceptionResNetBlock)
        if residual and runs and isinstance(runs[-1][-1][1], InceptionResNetBlock):
            runs[-1].append((name, block))
        else:
            runs.append([(name, block)])
    return [BlockGroup(run) for run in runs]


def reduce_group(outputs: list[Tensor], group_input: Tensor, residuals: list[Tensor], top_k: int) -> Tensor:
    """One group's packed numbers, (B, G * n): per image, each block's :func:`reduce_block` parts
    in forward order. The group's outputs are stacked and reduced as one batch, so a run of ten
    blocks costs the kernels of one."""
    batch = group_input.shape[0]
    stacked = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    shortcuts = added = None
    if residuals:  # what each block received: the group's input, then the previous block's output
        shortcuts = torch.cat([group_input, *outputs[:-1]])
        added = torch.cat(residuals) if len(residuals) > 1 else residuals[0]
    parts = reduce_block(stacked, shortcuts, added, top_k)  # each (G * B, n)
    per_block = torch.cat([part.reshape(len(outputs), batch, -1) for part in parts], 2)  # (G, B, n)
    return per_block.transpose(0, 1).reshape(batch, -1)


def head_part(model: InceptionNetwork, features: Tensor) -> Tensor:
    """The top-5 probabilities and class indices, (B, 10); a head of fewer classes pads with index -1."""
    probabilities = model.forward_head(features).float().softmax(1)
    top = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
    missing = 5 - top.values.shape[1]
    values = torch.nn.functional.pad(top.values, (0, missing))
    indices = torch.nn.functional.pad(top.indices.float(), (0, missing), value=-1.0)
    return torch.cat([values, indices], 1)


@dataclass(frozen=True)
class PipelineSteps:
    """The callables :func:`pipeline` runs: each group's forward, each group's reduction, the head.

    Plain eager modules and functions by default; :meth:`compiled` swaps in torch.compile'd ones
    (one compiled forward per group, so that each group's maps can be reduced, on a second CUDA
    stream, while the next groups run); explorer.runtime.ahead loads ones compiled ahead of time in
    another process. Built once per model and reused.
    """

    groups: list[BlockGroup]
    forwards: list[Callable[[Tensor], tuple[list[Tensor], list[Tensor]]]]
    reduces: list[Callable[[list[Tensor], Tensor, list[Tensor], int], Tensor]]
    head: Callable[[InceptionNetwork, Tensor], Tensor] = head_part

    @classmethod
    def eager(cls, model: InceptionNetwork) -> PipelineSteps:
        groups = block_groups(model)
        return cls(groups, list(groups), [reduce_group] * len(groups))

    @classmethod
    def compiled(cls, model: InceptionNetwork) -> PipelineSteps:
        groups = block_groups(model)
        reduce = torch.compile(reduce_group, dynamic=False)
        return cls(
            groups,
            [torch.compile(group, dynamic=False) for group in groups],
            [reduce] * len(groups),
            torch.compile(head_part, dynamic=False),
        )


@contextlib.contextmanager
def compile_limits() -> Iterator[None]:
    """Let torch.compile keep one compiled version per group (the reduction and the group forward
    code are shared by every group, each with its own shapes), where its default stops at 8."""
    import torch._dynamo.config as dynamo

    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    with dynamo.patch(**{name: 64}):
        yield


def pipeline(
    model: InceptionNetwork,
    x: Tensor,
    top_k: int,
    steps: PipelineSteps | None = None,
    *,
    out: Tensor | None = None,
    reduce_stream: torch.cuda.Stream | None = None,
) -> tuple[Tensor, Layout]:
    """The whole per-image computation: forward, top-5, every block's maps and statistics, packed.

    Returns one (B, n) float32 tensor, a row per image (written into ``out`` when given), and the
    layout to read a row back. The same function runs eagerly on the CPU and, captured once as a
    CUDA graph, on the GPU. There, with a ``reduce_stream``, each group's reductions run on that
    stream while the main stream goes on with the next group's forward: at batch 1 neither fills
    the GPU, so the maps cost little more than the forward alone.
    """
    steps = steps or PipelineSteps.eager(model)
    main = torch.cuda.current_stream(x.device) if reduce_stream is not None else None
    parts: list[Tensor] = []
    layout = Layout()
    kept: list[object] = []  # what the reduce stream reads stays referenced until it has joined
    for group, forward, reduce in zip(steps.groups, steps.forwards, steps.reduces, strict=True):
        outputs, residuals = forward(x)
        if reduce_stream is not None:
            reduce_stream.wait_stream(main)
        with torch.cuda.stream(reduce_stream) if reduce_stream is not None else contextlib.nullcontext():
            parts.append(reduce(outputs, x, residuals, top_k))
        kept += [x, outputs, residuals]
        for name, output in zip(group.names, outputs, strict=True):
            layout.add(name, output, top_k, 4 if group.residual else 3)
        x = outputs[-1]
    head = steps.head(model, x)
    if reduce_stream is not None:
        main.wait_stream(reduce_stream)
    if out is None:
        return torch.cat([head, *parts], 1), layout
    torch.cat([head, *parts], 1, out=out)
    return out, layout


def streamed_pipeline(model: InceptionNetwork, x: Tensor, top_k: int = 8) -> tuple[Tensor, Layout]:
    """:func:`pipeline`'s packed numbers and layout, computed block by block: each block's output is
    reduced as soon as it exists and then let go. The CPU's way: nothing to overlap, and a small working
    set (no run of twenty outputs kept for one stacked reduction) keeps the memory traffic down."""
    parts, layout = [], Layout()
    for name, block in model.blocks():
        if isinstance(block, InceptionResNetBlock):
            out, residual = block.forward_parts(x)
            reduced = reduce_block(out, x, residual, top_k)
        else:
            out = block(x)
            reduced = reduce_block(out, None, None, top_k)
        parts.append(torch.cat(reduced, 1))
        layout.add(name, out, top_k, reduced[-1].shape[1])
        x = out
    return torch.cat([head_part(model, x), *parts], 1), layout
