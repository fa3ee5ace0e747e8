"""What one channel of a block computes from the block's input, and nothing else.

A circuit asks how one channel C of a block B is built from B's input; answering it runs B many times (once,
then once per ablation, on every image). Only C's own path through B is needed: the branch that holds C (the
others are concatenated beside it and never meet it), and of a residual block's final 1x1 "up" convolution the
one row that makes C. :func:`channel_path` builds that path from the block's own modules (their weights,
unchanged), so its output equals channel C of the block's output, and costs a fraction of the block's forward.

A target is a block's output (``repeat_1.4``) or a branch's output inside a block (``repeat_1.4.branch1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.nets import InceptionNetwork
from explorer.nets.blocks import InceptionResNetBlock
from explorer.nets.units import ConcatBranches, ConvBnRelu

#: Where a circuit's walk ends: the image itself, its three colour channels.
PIXELS = "pixels"
PIXEL_CHANNELS = ("red", "green", "blue")

ChannelMap = Callable[[Tensor], Tensor]  # (N, C_in, H, W) -> (N, H', W'): one channel's map


class TargetError(ValueError):
    """A block, branch or channel the network does not have, with a line for people naming what it has."""


@dataclass(frozen=True)
class Target:
    """Channel ``channel`` of ``node``: a block (``repeat.0``) or a branch inside one (``repeat.0.branch1``)."""

    node: str
    channel: int

    @property
    def block(self) -> str:
        return self.node if self.branch is None else self.node.rsplit(".", 1)[0]

    @property
    def branch(self) -> str | None:
        head, _, tail = self.node.rpartition(".")
        return tail if head and tail.startswith("branch") else None


def names_line(names: list[str]) -> str:
    """Block names for one line: runs of numbered blocks (``repeat.0`` to ``repeat.9``) said once."""
    parts: list[str] = []
    run: list[str] = []
    for name in [*names, ""]:
        stem = name.rsplit(".", 1)[0] if "." in name else None
        if run and stem == run[0].rsplit(".", 1)[0]:
            run.append(name)
            continue
        if run:
            parts.append(run[0] if len(run) == 1 else f"{run[0]} to {run[-1]}")
        run = [name] if stem else []
        if name and not stem:
            parts.append(name)
    return ", ".join(parts)


def resolve(model: InceptionNetwork, node: str, channel: int) -> tuple[Target, nn.Module]:
    """The target and its module, or :class:`TargetError` naming the blocks, branches or channels there are."""
    blocks = dict(model.blocks())
    block_name, _, branch = node.rpartition(".") if node not in blocks else (node, "", "")
    if block_name not in blocks:
        raise TargetError(f"no block {node!r} in this network; its blocks: {names_line(list(blocks))}")
    module = blocks[block_name]
    if branch:
        names = module.branch_names() if isinstance(module, ConcatBranches) else []
        if branch not in names:
            has = f"its branches: {', '.join(names)}" if names else "it has no branches"
            raise TargetError(f"{block_name} has no {branch!r}; {has}")
        module = getattr(module, branch)
    width = output_channels(model, node)
    if not 0 <= channel < width:
        raise TargetError(f"{node} has channels 0 to {width - 1}, not {channel}")
    return Target(node, channel), module


def output_channels(model: InceptionNetwork, node: str) -> int:
    """The channels of a block's or a branch's output, from a weightless run on the ``meta`` device."""
    shapes = node_shapes(model)
    if node not in shapes:
        raise TargetError(f"no block or branch {node!r} in this network; its blocks: {names_line(model.block_names())}")
    return shapes[node][0]


def node_shapes(model: InceptionNetwork) -> dict[str, tuple[int, int, int]]:
    """(channels, height, width) of every block's output and of its branches' outputs, from one blank image
    (a fraction of a second on a CPU; once per network shape)."""
    key = (model.config, str(next(model.parameters()).device))
    if key not in _SHAPES:
        config = model.config
        x = torch.zeros(1, config.in_channels, config.input_size, config.input_size, device=key[1])
        shapes: dict[str, tuple[int, int, int]] = {}
        with torch.inference_mode():
            for name, block in model.blocks():
                if isinstance(block, ConcatBranches):
                    for branch_name, branch in zip(block.branch_names(), block.branches(), strict=True):
                        shapes[f"{name}.{branch_name}"] = tuple(branch(x).shape[1:])
                x = block(x)
                shapes[name] = tuple(x.shape[1:])
        _SHAPES[key] = shapes
    return _SHAPES[key]


#: Shapes by (network config, device): they hold no tensors, and a server sees a handful of shapes.
_SHAPES: dict[tuple, dict[str, tuple[int, int, int]]] = {}


def previous_block(model: InceptionNetwork, block: str) -> str:
    """The block whose output is ``block``'s input, or :data:`PIXELS` for the first."""
    names = model.block_names()
    at = names.index(block)
    return names[at - 1] if at else PIXELS


class NotLinear(ValueError):
    """A path with a max pool or a layer of unknown kind: it has no linear view."""


def channel_path(module: nn.Module, channel: int, linear: bool = False) -> ChannelMap:
    """Channel ``channel`` of ``module``'s output as a function of its input, computing only what it needs.

    ``linear``: the path with its ReLUs taken out (the block's final one too), as the expanded weights read it;
    a max pool on the way raises :class:`NotLinear`."""
    if isinstance(module, InceptionResNetBlock):
        residual = residual_path(module, channel, linear)
        return lambda x: residual(x, x)
    if isinstance(module, ConcatBranches) and _plain_concat(module):
        branch, inner = _branch_of(module, channel)
        return channel_path(branch, inner, linear)
    if isinstance(module, nn.Sequential) and len(module):
        *before, last = list(module)
        tail = channel_path(last, channel, linear)

        def chained(x: Tensor) -> Tensor:
            for unit in before:
                x = run(unit, x, linear)
            return tail(x)

        return chained
    if isinstance(module, ConvBnRelu):
        return lambda x: _unit_channel(module, x, channel, linear)
    if isinstance(module, nn.AvgPool2d) or (isinstance(module, nn.MaxPool2d) and not linear):
        return lambda x: module(x[:, channel : channel + 1])[:, 0]  # a pool maps channel c to channel c
    return lambda x: run(module, x, linear)[:, channel]


def run(module: nn.Module, x: Tensor, linear: bool = False) -> Tensor:
    """``module``'s output; ``linear``: with its ReLUs taken out (:class:`NotLinear` where it cannot be)."""
    if not linear:
        return module(x)
    if isinstance(module, ConvBnRelu):
        return module.bn(module.conv(x))
    if isinstance(module, nn.Sequential):
        for unit in module:
            x = run(unit, x, linear)
        return x
    if isinstance(module, InceptionResNetBlock):
        out = module.scale * module.conv2d(torch.cat([run(b, x, linear) for b in module.branches()], 1))
        return x + out if module.shortcut else out
    if isinstance(module, ConcatBranches) and _plain_concat(module):
        return torch.cat([run(b, x, linear) for b in module.branches()], 1)
    if isinstance(module, nn.ReLU | nn.Identity):
        return x
    if isinstance(module, nn.AvgPool2d | nn.Conv2d | nn.BatchNorm2d):
        return module(x)
    raise NotLinear(f"{type(module).__name__} is not linear without its ReLUs (a max pool, or a block of its own)")


def _plain_concat(module: ConcatBranches) -> bool:
    """Whether the block is its branches side by side (not a block with a forward of its own, as Inception-C)."""
    return type(module).forward in (ConcatBranches.forward, InceptionResNetBlock.forward)


def residual_path(
    block: InceptionResNetBlock, channel: int, linear: bool = False
) -> Callable[[Tensor, Tensor], Tensor]:
    """Channel ``channel`` of a residual block's output, from the input as the shortcut sees it and as the
    branches see it (the same values; two tensors so that a gradient can tell the two paths apart)."""
    up = block.conv2d
    weight = up.weight[channel : channel + 1]
    bias = None if up.bias is None else up.bias[channel : channel + 1]

    def path(shortcut: Tensor, branched: Tensor) -> Tensor:
        concat = torch.cat([run(branch, branched, linear) for branch in block.branches()], 1)
        out = block.scale * F.conv2d(concat, weight, bias)[:, 0]
        if block.shortcut:
            out = shortcut[:, channel] + out
        return out if block.act is None or linear else torch.relu(out)

    return path


def _branch_of(module: ConcatBranches, channel: int) -> tuple[nn.Module, int]:
    start = 0
    for branch in module.branches():
        width = _width(branch, module)
        if channel < start + width:
            return branch, channel - start
        start += width
    raise TargetError(f"channel {channel} is past the block's {start} channels")


def _width(branch: nn.Module, parent: ConcatBranches) -> int:
    last = branch[-1] if isinstance(branch, nn.Sequential) else branch
    if isinstance(last, ConvBnRelu):
        return last.out_channels
    # A pool passes its input's channels: the block's input width, which its first unit reads.
    first = next(m for m in parent.modules() if isinstance(m, nn.Conv2d))
    return first.in_channels


def _unit_channel(unit: ConvBnRelu, x: Tensor, channel: int, linear: bool = False) -> Tensor:
    conv, bn = unit.conv, unit.bn
    c = slice(channel, channel + 1)
    y = F.conv2d(x, conv.weight[c], None, conv.stride, conv.padding, conv.dilation)
    y = F.batch_norm(y, bn.running_mean[c], bn.running_var[c], bn.weight[c], bn.bias[c], False, 0.0, bn.eps)
    return y[:, 0] if linear else torch.relu(y)[:, 0]
