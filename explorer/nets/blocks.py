"""The Inception-ResNet blocks, one class per block type, each taking its widths as arguments: Mixed_5b, the
residual A, B and C blocks (Figures 10-13, 16, 17, 19) and the two grid reductions (Figures 7, 12, 18; Table 1)."""

from __future__ import annotations

from torch import Tensor, nn

from explorer.nets.units import ConcatBranches, ConvBnRelu, avg_pool_projection, chain, max_pool


class Mixed5b(ConcatBranches):
    """Released network only: an Inception-A-style block between the stem and the A blocks.

    [1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3 avg pool -> 1x1], 35x35 in and out.
    """

    def __init__(
        self,
        in_channels: int,
        branch0: int,
        branch1: tuple[int, int],
        branch2: tuple[int, int, int],
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, branch0, 1)
        self.branch1 = chain(in_channels, (branch1[0], 1), (branch1[1], 5))
        self.branch2 = chain(in_channels, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3))
        self.branch3 = avg_pool_projection(in_channels, pool_proj)
        self.out_channels = branch0 + branch1[-1] + branch2[-1] + pool_proj


class InceptionResNetBlock(ConcatBranches):
    """The residual Inception block: ``out = ReLU(x + scale * linear(concat(branches(x))))``.

    ``conv2d`` is the paper's "linear" 1x1 (the "filter expansion"): no batch norm and no
    activation, with a bias, widening the concatenated branches back to the input's width so
    that the addition is possible. The paper puts no batch norm after the addition.
    """

    def __init__(
        self, in_channels: int, branches: list[nn.Module], scale: float, activate: bool, shortcut: bool = True
    ) -> None:
        super().__init__()
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        concat_channels = sum(_out_channels(branch) for branch in branches)
        self.conv2d = nn.Conv2d(concat_channels, in_channels, 1)
        # No module at all when there is no activation, so module counts see none.
        self.act = nn.ReLU() if activate else None
        self.scale = scale
        self.activate = activate
        self.shortcut = shortcut  # False: the experiment without residual connections
        self.out_channels = in_channels

    def residual(self, x: Tensor) -> Tensor:
        """The residual branch before scaling: linear(concat(branches(x)))."""
        return self.conv2d(super().forward(x))

    def forward_parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The block's output and the scaled residual that was added to the shortcut ``x``."""
        scaled = self.scale * self.residual(x)
        out = x + scaled if self.shortcut else scaled
        return (out if self.act is None else self.act(out)), scaled

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_parts(x)[0]


def _out_channels(branch: nn.Module) -> int:
    return branch[-1].out_channels if isinstance(branch, nn.Sequential) else branch.out_channels


class Block35(InceptionResNetBlock):
    """Inception-ResNet-A (35x35 grid), Figures 16 (v2), 10 (v1): [1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3] -> linear 1x1.

    Three branches look at the same input with growing receptive fields; the linear 1x1 widens their
    concatenation back to the input's width, and the scaled result is added to the input.
    """

    def __init__(
        self,
        in_channels: int,
        branch0: int,
        branch1: tuple[int, int],
        branch2: tuple[int, int, int],
        scale: float,
        activate: bool = True,
        shortcut: bool = True,
    ) -> None:
        branches = [
            ConvBnRelu(in_channels, branch0, 1),
            chain(in_channels, (branch1[0], 1), (branch1[1], 3)),
            chain(in_channels, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3)),
        ]
        super().__init__(in_channels, branches, scale, activate, shortcut)


class FactorisedBlock(InceptionResNetBlock):
    """[1x1 | 1x1 -> 1xn -> nx1] -> linear 1x1: the B (n = 7) and C (n = 3) blocks' shared shape."""

    n: int

    def __init__(
        self,
        in_channels: int,
        branch0: int,
        branch1: tuple[int, int, int],
        scale: float,
        activate: bool = True,
        shortcut: bool = True,
    ) -> None:
        n = self.n
        branches = [
            ConvBnRelu(in_channels, branch0, 1),
            chain(in_channels, (branch1[0], 1), (branch1[1], (1, n)), (branch1[2], (n, 1))),
        ]
        super().__init__(in_channels, branches, scale, activate, shortcut)


class Block17(FactorisedBlock):
    """Inception-ResNet-B (17x17 grid), Figures 17 (v2) and 11 (v1): [1x1 | 1x1 -> 1x7 -> 7x1] -> linear 1x1.

    A 7x7 receptive field factorised into 1x7 then 7x1, far cheaper than one 7x7 convolution.
    """

    n = 7


class Block8(FactorisedBlock):
    """Inception-ResNet-C (8x8 grid), Figures 19 (v2) and 13 (v1): [1x1 | 1x1 -> 1x3 -> 3x1] -> linear 1x1.

    The coarsest grid and the widest blocks; the released network's last one is unscaled and has no ReLU.
    """

    n = 3


class ReductionA(ConcatBranches):
    """Reduction-A (35x35 -> 17x17), Figure 7: [3x3 n s2 V | 1x1 k -> 3x3 l -> 3x3 m s2 V | max pool].

    Halves the grid with stride-2 convolutions and a max pool side by side, and widens the channels,
    so that no information bottleneck is made where the grid shrinks.
    """

    def __init__(self, in_channels: int, k: int, l: int, m: int, n: int) -> None:  # noqa: E741 (the paper's names)
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, n, 3, stride=2, padding="valid")
        self.branch1 = chain(in_channels, (k, 1), (l, 3), (m, 3, 2, "valid"))
        self.branch2 = max_pool()
        self.out_channels = n + m + in_channels


class ReductionB(ConcatBranches):
    """Reduction-B (17x17 -> 8x8), Figures 12 and 18: three conv branches ending 3x3 s2 V, and a max pool."""

    def __init__(
        self,
        in_channels: int,
        branch0: tuple[int, int],
        branch1: tuple[int, int],
        branch2: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.branch0 = chain(in_channels, (branch0[0], 1), (branch0[1], 3, 2, "valid"))
        self.branch1 = chain(in_channels, (branch1[0], 1), (branch1[1], 3, 2, "valid"))
        self.branch2 = chain(in_channels, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3, 2, "valid"))
        self.branch3 = max_pool()
        self.out_channels = branch0[-1] + branch1[-1] + branch2[-1] + in_channels


class RepeatedBlocks(nn.Sequential):
    """A run of identical residual blocks (``repeat``, ``repeat_1``, ``repeat_2``)."""
