"""The units every block is made of: the paper's conv layer (convolution, batch norm, ReLU), pools, chains of
units, and the concatenation of parallel branches.

Padding follows the paper's notation: ``"valid"`` (the paper's "V", the grid shrinks) or ``"same"`` (everything
else).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Padding = Literal["same", "valid"]
KernelSize = int | tuple[int, int]

#: Batch-norm epsilon of the TF-slim checkpoint (and timm's port of it).
BN_EPS = 1e-3


class ConvBnRelu(nn.Module):
    """Convolution (no bias), batch norm, ReLU: the paper's ordinary conv layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: int = 1,
        padding: Padding = "same",
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        pad = (kh // 2, kw // 2) if padding == "same" else (0, 0)
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride, pad, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        # In place is safe: it overwrites the batch norm's fresh output, never a block's input.
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def max_pool() -> nn.MaxPool2d:
    """3x3 max pool, stride 2, valid: every grid reduction in these networks."""
    return nn.MaxPool2d(3, stride=2)


def chain(in_channels: int, *layers: tuple[int, KernelSize] | tuple[int, KernelSize, int, Padding]) -> nn.Sequential:
    """A branch of conv units, each given as (out, kernel[, stride, padding])."""
    units = []
    for spec in layers:
        out, kernel, *rest = spec
        units.append(ConvBnRelu(in_channels, out, kernel, *rest))
        in_channels = out
    return nn.Sequential(*units)


class ConcatBranches(nn.Module):
    """Runs ``branch0``, ``branch1``, ... on one input and concatenates them on channels."""

    def branches(self) -> list[nn.Module]:
        """The branches in concatenation order (a subclass with other names says which)."""
        return [module for name, module in self.named_children() if name.startswith("branch")]

    def branch_names(self) -> list[str]:
        by_module = {id(module): name for name, module in self.named_children()}
        return [by_module[id(module)] for module in self.branches()]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches()], 1)


def avg_pool_projection(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 average pool (stride 1) then a 1x1 unit: the pooling branch of the Inception blocks.

    TF's "SAME" average pool divides by the cells inside the image, hence no padded zeros.
    """
    return nn.Sequential(
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), ConvBnRelu(in_channels, out_channels, 1)
    )
