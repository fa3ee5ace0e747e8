"""Inside one block: every intermediate output, computed by running the block's submodules explicitly.

For a residual block that is each branch's units in order, the concatenation, the linear 1x1's
output, the scaled residual, the shortcut (the block's input) and the sum after the ReLU; for a
concatenating block (Mixed_5b, the reductions, the paper stem's Mixed_3a/4a/5a) its branches'
units and pools and the concatenation; for a conv-BN-ReLU unit (a stem layer, Conv2d_7b, or any
unit inside a block) its convolution, batch norm and ReLU. Nothing is hooked: the same modules
are called in the same order as their ``forward``, so the last output is the block's own output
(a test checks each against forward hooks on timm's model).

Names are module paths as in the state_dict where the output is a module's
(``repeat_1.0.branch1.1``), and ``BLOCK.concat``, ``BLOCK.scaled_residual``, ``BLOCK.shortcut``,
``BLOCK.output`` for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from explorer.nets import ConcatBranches, ConvBnRelu, InceptionC, InceptionNetwork, InceptionResNetBlock
from explorer.runtime.reductions import reduce_block

#: What each kind of inside output is, in words for people.
PART_KINDS: dict[str, str] = {
    "unit": "conv-BN-ReLU unit",
    "pool": "pooling",
    "concat": "filter concatenation",
    "linear": "linear 1x1 (no BN, no ReLU)",
    "scaled_residual": "scaled residual",
    "shortcut": "shortcut (the block's input)",
    "output": "output",
    "conv": "convolution",
    "batch_norm": "batch norm",
    "relu": "ReLU",
}


@dataclass(frozen=True)
class InsideTensor:
    """One output inside a block, with where it comes from (for drawing and for a unit's inside)."""

    name: str
    kind: str  # a key of PART_KINDS
    branch: str | None  # "branch1" for outputs inside a branch
    input: str  # the name of the output this one was computed from ("" for the block's input)
    tensor: Tensor


def part_names(block: nn.Module) -> tuple[str, ...]:
    """The outputs inside a block that are not its submodules, as :func:`inside_tensors` names them after the
    block's name: what a map node or a CLI argument may name besides the block's units and pools."""
    if isinstance(block, ConvBnRelu):
        return ()
    if not isinstance(block, ConcatBranches):
        return ("output",)
    if isinstance(block, InceptionResNetBlock):
        return ("concat", "scaled_residual", "shortcut", "output")
    return ("concat",)


def inside_tensors(block: nn.Module, x: Tensor, name: str) -> list[InsideTensor]:
    """Every output inside ``block`` (named ``name``) for the input ``x``, in forward order."""
    if isinstance(block, ConvBnRelu):
        return _unit_parts(block, x, name, "")
    if not isinstance(block, ConcatBranches):  # a pooling layer of the stem: nothing inside
        return [InsideTensor(f"{name}.output", "output", None, "", block(x))]
    if isinstance(block, InceptionC):
        return _inception_c_parts(block, x, name)
    parts: list[InsideTensor] = []
    ends = []
    for branch_name, branch in zip(block.branch_names(), block.branches(), strict=True):
        units = list(branch.named_children()) if isinstance(branch, nn.Sequential) else [("", branch)]
        h, source = x, ""
        for index, unit in units:
            path = f"{name}.{branch_name}" + (f".{index}" if index else "")
            h = unit(h)
            kind = "unit" if isinstance(unit, ConvBnRelu) else "pool"
            parts.append(InsideTensor(path, kind, branch_name, source, h))
            source = path
        ends.append(parts[-1].name)
    concat = torch.cat([p.tensor for p in parts if p.name in ends], 1)
    parts.append(InsideTensor(f"{name}.concat", "concat", None, ",".join(ends), concat))
    if not isinstance(block, InceptionResNetBlock):
        return parts
    linear = block.conv2d(concat)
    parts.append(InsideTensor(f"{name}.conv2d", "linear", None, f"{name}.concat", linear))
    scaled = block.scale * linear
    parts.append(InsideTensor(f"{name}.scaled_residual", "scaled_residual", None, f"{name}.conv2d", scaled))
    parts.append(InsideTensor(f"{name}.shortcut", "shortcut", None, "", x))
    out = x + scaled if block.shortcut else scaled
    if block.act is not None:
        out = block.act(out)
    parts.append(InsideTensor(f"{name}.output", "output", None, f"{name}.scaled_residual", out))
    return parts


def _inception_c_parts(block: InceptionC, x: Tensor, name: str) -> list[InsideTensor]:
    """Inception-C's units follow its wiring: two branches split into a pair that reads the same unit."""
    parts: list[InsideTensor] = []
    outputs = {"": x}
    for child, source in block.WIRING:
        module = getattr(block, child)
        units = list(module.named_children()) if isinstance(module, nn.Sequential) else [("", module)]
        h, reads = outputs[source], f"{name}.{source}" if source else ""
        for index, unit in units:
            path = f"{name}.{child}" + (f".{index}" if index else "")
            h = unit(h)
            parts.append(InsideTensor(path, "unit" if isinstance(unit, ConvBnRelu) else "pool", child, reads, h))
            reads = path
        outputs[child] = h
    ends = [next(p.name for p in reversed(parts) if p.branch == child) for child in block.CONCAT]
    concat = torch.cat([outputs[c] for c in block.CONCAT], 1)
    parts.append(InsideTensor(f"{name}.concat", "concat", None, ",".join(ends), concat))
    return parts


def _unit_parts(unit: ConvBnRelu, x: Tensor, name: str, source: str) -> list[InsideTensor]:
    conv = unit.conv(x)
    bn = unit.bn(conv)
    return [
        InsideTensor(f"{name}.conv", "conv", None, source, conv),
        InsideTensor(f"{name}.bn", "batch_norm", None, f"{name}.conv", bn),
        InsideTensor(f"{name}.relu", "relu", None, f"{name}.bn", unit.relu(bn.clone())),  # ReLU is in place
    ]


def unit_tensors(model: InceptionNetwork, block: str, block_input: Tensor, unit: str) -> list[InsideTensor]:
    """A unit inside ``block`` (``repeat_1.0.branch1.1``): its convolution, batch norm and ReLU."""
    parts = inside_tensors(model.get_submodule(block), block_input, block)
    found = next((p for p in parts if p.name == unit and p.kind == "unit"), None)
    if found is None:
        raise ValueError(f"{unit!r} is not a conv-BN-ReLU unit of {block}")
    source = next((p.tensor for p in parts if p.name == found.input), block_input)
    return _unit_parts(model.get_submodule(unit), source, unit, found.input)


def block_inputs(model: InceptionNetwork, x: Tensor) -> dict[str, Tensor]:
    """Each block's input for the image batch ``x``, by block name in forward order."""
    inputs: dict[str, Tensor] = {}
    for name, block in model.blocks():
        inputs[name] = x
        x = block(x)
    return inputs


# --------------------------------------------------------------------------------------------
# As values for pages and the command line
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsideMaps:
    """One inside output reduced to what people look at (first image of the batch)."""

    name: str
    kind: str
    branch: str | None
    input: str
    shape: tuple[int, int, int]  # channels, height, width
    mean_map: np.ndarray  # (H, W)
    max_map: np.ndarray  # (H, W)
    top_channels: tuple[int, ...]
    top_maps: np.ndarray  # (k, H, W)
    mean: float
    std: float
    zero_fraction: float

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "branch": self.branch,
            "shape": list(self.shape),
            "statistics": {"mean": self.mean, "std": self.std, "zero_fraction": self.zero_fraction},
            "top_channels": list(self.top_channels),
        }


@torch.no_grad()
def reduce_inside(parts: list[InsideTensor], top_k: int = 8) -> tuple[InsideMaps, ...]:
    """Maps and statistics of each inside output (first image), as the engine reduces a block's output."""
    reduced = []
    for part in parts:
        out = part.tensor[:1]
        channels, height, width = out.shape[1:]
        mean_map, max_map, top, top_maps, stats = (p[0].cpu().numpy() for p in reduce_block(out, None, None, top_k))
        reduced.append(
            InsideMaps(
                part.name,
                part.kind,
                part.branch,
                part.input,
                (channels, height, width),
                mean_map.reshape(height, width),
                max_map.reshape(height, width),
                tuple(int(c) for c in top),
                top_maps.reshape(len(top), height, width),
                float(stats[0]),
                float(stats[1]),
                float(stats[2]),
            )
        )
    return tuple(reduced)
