"""Inception-v4's blocks, without residual connections (Figures 4-8): Inception-A, -B, -C and its Reduction-B."""

from __future__ import annotations

import torch
from torch import Tensor

from explorer.nets.units import ConcatBranches, ConvBnRelu, avg_pool_projection, chain, max_pool


class InceptionA(ConcatBranches):
    """Inception-A (35x35 grid), Figure 4: [1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1]."""

    def __init__(
        self, in_channels: int, branch0: int, branch1: tuple[int, int], branch2: tuple[int, int, int], pool_proj: int
    ) -> None:
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, branch0, 1)
        self.branch1 = chain(in_channels, (branch1[0], 1), (branch1[1], 3))
        self.branch2 = chain(in_channels, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3))
        self.branch3 = avg_pool_projection(in_channels, pool_proj)
        self.out_channels = branch0 + branch1[-1] + branch2[-1] + pool_proj


class InceptionB(ConcatBranches):
    """Inception-B (17x17 grid), Figure 5.

    [1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1]
    """

    def __init__(
        self,
        in_channels: int,
        branch0: int,
        branch1: tuple[int, int, int],
        branch2: tuple[int, int, int, int, int],
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, branch0, 1)
        a, b, c = branch1
        self.branch1 = chain(in_channels, (a, 1), (b, (1, 7)), (c, (7, 1)))
        a, b, c, d, e = branch2
        self.branch2 = chain(in_channels, (a, 1), (b, (7, 1)), (c, (1, 7)), (d, (7, 1)), (e, (1, 7)))
        self.branch3 = avg_pool_projection(in_channels, pool_proj)
        self.out_channels = branch0 + branch1[-1] + branch2[-1] + pool_proj


class InceptionC(ConcatBranches):
    """Inception-C (8x8 grid), Figure 6: [1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3, 3x1) | avg pool -> 1x1].

    Two branches end in a split pair: a 1x3 and a 3x1 side by side on the same input, concatenated.
    The units sit directly on the block (``branch1_0``, ``branch1_1a``, ...) as in timm.
    """

    def __init__(
        self,
        in_channels: int,
        branch0: int,
        branch1: tuple[int, int],
        branch2: tuple[int, int, int, int],
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, branch0, 1)
        self.branch1_0 = ConvBnRelu(in_channels, branch1[0], 1)
        self.branch1_1a = ConvBnRelu(branch1[0], branch1[1], (1, 3))
        self.branch1_1b = ConvBnRelu(branch1[0], branch1[1], (3, 1))
        a, b, c, d = branch2
        self.branch2_0 = ConvBnRelu(in_channels, a, 1)
        self.branch2_1 = ConvBnRelu(a, b, (3, 1))
        self.branch2_2 = ConvBnRelu(b, c, (1, 3))
        self.branch2_3a = ConvBnRelu(c, d, (1, 3))
        self.branch2_3b = ConvBnRelu(c, d, (3, 1))
        self.branch3 = avg_pool_projection(in_channels, pool_proj)
        self.out_channels = branch0 + 2 * branch1[-1] + 2 * d + pool_proj

    #: Each unit and the unit it reads ("" for the block's input), in forward order; then the concatenation.
    WIRING = (
        ("branch0", ""),
        ("branch1_0", ""),
        ("branch1_1a", "branch1_0"),
        ("branch1_1b", "branch1_0"),
        ("branch2_0", ""),
        ("branch2_1", "branch2_0"),
        ("branch2_2", "branch2_1"),
        ("branch2_3a", "branch2_2"),
        ("branch2_3b", "branch2_2"),
        ("branch3", ""),
    )
    CONCAT = ("branch0", "branch1_1a", "branch1_1b", "branch2_3a", "branch2_3b", "branch3")

    def forward(self, x: Tensor) -> Tensor:
        outputs: dict[str, Tensor] = {"": x}
        for name, source in self.WIRING:
            outputs[name] = getattr(self, name)(outputs[source])
        return torch.cat([outputs[name] for name in self.CONCAT], 1)


class InceptionV4ReductionB(ConcatBranches):
    """Inception-v4's Reduction-B (17x17 -> 8x8), Figure 8.

    [1x1 -> 3x3 s2 V | 1x1 -> 1x7 -> 7x1 -> 3x3 s2 V | max pool]
    """

    def __init__(self, in_channels: int, branch0: tuple[int, int], branch1: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.branch0 = chain(in_channels, (branch0[0], 1), (branch0[1], 3, 2, "valid"))
        a, b, c, d = branch1
        self.branch1 = chain(in_channels, (a, 1), (b, (1, 7)), (c, (7, 1)), (d, 3, 2, "valid"))
        self.branch2 = max_pool()
        self.out_channels = branch0[-1] + d + in_channels
