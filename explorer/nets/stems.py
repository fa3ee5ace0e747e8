"""The stems: 299x299 in, 35x35 out.

Why the Inception-ResNet stem has no class of its own: in every released implementation (TF-slim, Keras, timm)
the stem's layers sit directly on the network (``conv2d_1a`` ... ``maxpool_5a``), and the state_dict keys must
match timm's. So a stem here is a sequence of named top-level units; the paper-v2 stem's three branching steps
are classes (:class:`Mixed3a`, :class:`Mixed4a`, :class:`Mixed5a`, named as in the Inception-v4 code lineage).
"""

from __future__ import annotations

from torch import nn

from explorer.nets.tables import StemName
from explorer.nets.units import ConcatBranches, ConvBnRelu, KernelSize, chain, max_pool


class Mixed3a(ConcatBranches):
    """Inception-v4 / paper-v2 stem, Figure 3: [3x3 max pool s2 V | 3x3 conv s2 V] (timm's names)."""

    def __init__(self, in_channels: int, conv: int) -> None:
        super().__init__()
        self.maxpool = max_pool()
        self.conv = ConvBnRelu(in_channels, conv, 3, stride=2, padding="valid")
        self.out_channels = in_channels + conv

    def branches(self) -> list[nn.Module]:
        return [self.maxpool, self.conv]


class Mixed4a(ConcatBranches):
    """Inception-v4 / paper-v2 stem, Figure 3: [1x1 -> 3x3 V | 1x1 -> 7x1 -> 1x7 -> 3x3 V].

    ``sevens`` orders the factorised pair: the figure draws 7x1 then 1x7; the released code (TF-slim,
    timm) runs 1x7 then 7x1, and its weights need that order.
    """

    def __init__(
        self,
        in_channels: int,
        branch0: tuple[int, int],
        branch1: tuple[int, int, int, int],
        sevens: tuple[KernelSize, KernelSize] = ((7, 1), (1, 7)),
    ) -> None:
        super().__init__()
        self.branch0 = chain(in_channels, (branch0[0], 1), (branch0[1], 3, 1, "valid"))
        a, b, c, d = branch1
        self.branch1 = chain(in_channels, (a, 1), (b, sevens[0]), (c, sevens[1]), (d, 3, 1, "valid"))
        self.out_channels = branch0[-1] + d


class Mixed5a(ConcatBranches):
    """Inception-v4 / paper-v2 stem, Figure 3: [3x3 conv s2 V | max pool s2 V] (timm's names)."""

    def __init__(self, in_channels: int, conv: int) -> None:
        super().__init__()
        self.conv = ConvBnRelu(in_channels, conv, 3, stride=2, padding="valid")
        self.maxpool = max_pool()
        self.out_channels = conv + in_channels

    def branches(self) -> list[nn.Module]:
        return [self.conv, self.maxpool]


def build_stem(kind: StemName, in_channels: int) -> tuple[list[tuple[str, nn.Module]], int]:
    """The stem's named units and its output width. 299x299 in, 35x35 out."""
    layers: list[tuple[str, nn.Module]] = [
        ("conv2d_1a", ConvBnRelu(in_channels, 32, 3, stride=2, padding="valid")),
        ("conv2d_2a", ConvBnRelu(32, 32, 3, padding="valid")),
        ("conv2d_2b", ConvBnRelu(32, 64, 3)),
    ]
    if kind == "released":  # TF-slim: max pool, 1x1 80, 3x3 192 V, max pool
        layers += [
            ("maxpool_3a", max_pool()),
            ("conv2d_3b", ConvBnRelu(64, 80, 1)),
            ("conv2d_4a", ConvBnRelu(80, 192, 3, padding="valid")),
            ("maxpool_5a", max_pool()),
        ]
        return layers, 192
    if kind == "inception-resnet-v1":  # Figure 14: max pool, 1x1 80, 3x3 192 V, 3x3 256 s2 V
        layers += [
            ("maxpool_3a", max_pool()),
            ("conv2d_3b", ConvBnRelu(64, 80, 1)),
            ("conv2d_4a", ConvBnRelu(80, 192, 3, padding="valid")),
            ("conv2d_4b", ConvBnRelu(192, 256, 3, stride=2, padding="valid")),
        ]
        return layers, 256
    if kind in ("inception-v4", "inception-v4-released"):  # Figure 3, shared by Inception-v4 and -ResNet-v2
        sevens: tuple[KernelSize, KernelSize] = ((1, 7), (7, 1)) if kind.endswith("released") else ((7, 1), (1, 7))
        mixed_3a = Mixed3a(64, 96)
        mixed_4a = Mixed4a(mixed_3a.out_channels, (64, 96), (64, 64, 64, 96), sevens)
        mixed_5a = Mixed5a(mixed_4a.out_channels, 192)
        layers += [("mixed_3a", mixed_3a), ("mixed_4a", mixed_4a), ("mixed_5a", mixed_5a)]
        return layers, mixed_5a.out_channels
    raise ValueError(f"unknown stem {kind!r}; expected one of: {', '.join(StemName.__args__)}")
