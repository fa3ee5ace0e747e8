"""The variant tables: each network as its widths, repeats and residual scales.

The data to the code in :mod:`explorer.nets.networks`. Four tables ship:

``released``
    The network of the TF-slim checkpoint, Keras ``InceptionResNetV2`` and timm
    ``inception_resnet_v2``: timm's ImageNet weights load with ``strict=True``.
``paper-v2`` / ``paper-v1``
    Inception-ResNet-v2 and -v1 as the paper draws them (Figures 3-19): the paper's stems, 5 x A,
    10 x B, 5 x C, no final 1x1 conv. Where the paper's IR-v2 widths do not add up, the built
    network takes the consistent reading recorded in :func:`explorer.nets.paper.paper_contradictions`.
``inception-v4``
    The paper's network without residual connections (Figures 3-9), the baseline of its argument;
    module names and shapes equal timm's ``inception_v4``, so its ImageNet weights load strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: The stems: TF-slim's for the released network; the paper's Figure 3 (paper-v2) and the same stem with
#: its 1x7 / 7x1 pair in the released code's order (Inception-v4, whose weights need it); Figure 14 (v1).
StemName = Literal["released", "inception-v4", "inception-v4-released", "inception-resnet-v1"]

# --------------------------------------------------------------------------------------------
# Variant tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mixed5bWidths:
    branch0: int
    branch1: tuple[int, int]
    branch2: tuple[int, int, int]
    pool_proj: int


@dataclass(frozen=True)
class BlockAWidths:
    branch0: int
    branch1: tuple[int, int]
    branch2: tuple[int, int, int]


@dataclass(frozen=True)
class TwoBranchWidths:
    """Inception-ResNet-B and -C: a 1x1 branch and a 1x1 -> factorised-conv branch."""

    branch0: int
    branch1: tuple[int, int, int]


@dataclass(frozen=True)
class ReductionAWidths:
    """The paper's (k, l, m, n) table for Reduction-A."""

    k: int
    l: int  # noqa: E741 (the paper's name)
    m: int
    n: int


@dataclass(frozen=True)
class ReductionBWidths:
    branch0: tuple[int, int]
    branch1: tuple[int, int]
    branch2: tuple[int, int, int]


@dataclass(frozen=True)
class BlockCounts:
    """How many of each residual block type: A (35x35), B (17x17), C (8x8)."""

    a: int
    b: int
    c: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.a, self.b, self.c)


@dataclass(frozen=True)
class ResidualScales:
    """The factor each block type multiplies its residual branch by before the addition."""

    a: float
    b: float
    c: float


@dataclass(frozen=True)
class InceptionResNetConfig:
    """One variant: its widths, how often each block repeats and how its residuals are scaled.

    ``repeats.c`` counts every C block. The last one has its own ReLU switch and scale
    (``last_block_relu``, ``last_block_scale``); when it differs from the others it is held
    apart as ``block8``, as TF-slim does, otherwise all C blocks sit in ``repeat_2``.
    """

    variant: str
    stem: StemName
    mixed_5b: Mixed5bWidths | None
    block_a: BlockAWidths
    reduction_a: ReductionAWidths
    block_b: TwoBranchWidths
    reduction_b: ReductionBWidths
    block_c: TwoBranchWidths
    repeats: BlockCounts
    scales: ResidualScales
    last_block_relu: bool
    last_block_scale: float
    final_conv: int | None
    num_classes: int = 1000
    head_hidden: tuple[int, ...] = ()  # Dense + ReLU widths before the classifier (a fine-tuned Keras head)
    drop_rate: float = 0.2  # the paper's dropout "keep 0.8"; inactive in eval mode
    shortcuts: bool = True  # False removes every residual connection (the teaching experiment)
    in_channels: int = 3
    input_size: int = 299

    residual = True

    @property
    def network(self) -> str:
        """The network's name, for titles."""
        return "Inception-ResNet-v1" if self.variant == "paper-v1" else "Inception-ResNet-v2"

    @property
    def splits_last_block(self) -> bool:
        return not self.last_block_relu or self.last_block_scale != self.scales.c


RELEASED = InceptionResNetConfig(
    variant="released",
    stem="released",
    mixed_5b=Mixed5bWidths(branch0=96, branch1=(48, 64), branch2=(64, 96, 96), pool_proj=64),
    block_a=BlockAWidths(branch0=32, branch1=(32, 32), branch2=(32, 48, 64)),
    reduction_a=ReductionAWidths(k=256, l=256, m=384, n=384),
    block_b=TwoBranchWidths(branch0=192, branch1=(128, 160, 192)),
    reduction_b=ReductionBWidths(branch0=(256, 384), branch1=(256, 288), branch2=(256, 288, 320)),
    block_c=TwoBranchWidths(branch0=192, branch1=(192, 224, 256)),
    repeats=BlockCounts(a=10, b=20, c=10),
    scales=ResidualScales(a=0.17, b=0.10, c=0.20),
    last_block_relu=False,
    last_block_scale=1.0,
    final_conv=1536,
)

#: The paper gives no per-block factors, only "between 0.1 and 0.3" (Section 3.3); the authors'
#: released code uses these, which lie in that range.
PAPER_SCALES = ResidualScales(a=0.17, b=0.10, c=0.20)

PAPER_V2 = InceptionResNetConfig(
    variant="paper-v2",
    stem="inception-v4",
    mixed_5b=None,
    block_a=BlockAWidths(branch0=32, branch1=(32, 32), branch2=(32, 48, 64)),  # Figure 16
    reduction_a=ReductionAWidths(k=256, l=256, m=384, n=384),  # Table 1
    block_b=TwoBranchWidths(branch0=192, branch1=(128, 160, 192)),  # Figure 17
    reduction_b=ReductionBWidths(branch0=(256, 384), branch1=(256, 288), branch2=(256, 288, 320)),  # Figure 18
    block_c=TwoBranchWidths(branch0=192, branch1=(192, 224, 256)),  # Figure 19
    repeats=BlockCounts(a=5, b=10, c=5),  # Figure 15
    scales=PAPER_SCALES,
    last_block_relu=True,
    last_block_scale=PAPER_SCALES.c,
    final_conv=None,
)

PAPER_V1 = InceptionResNetConfig(
    variant="paper-v1",
    stem="inception-resnet-v1",
    mixed_5b=None,
    block_a=BlockAWidths(branch0=32, branch1=(32, 32), branch2=(32, 32, 32)),  # Figure 10
    reduction_a=ReductionAWidths(k=192, l=192, m=256, n=384),  # Table 1
    block_b=TwoBranchWidths(branch0=128, branch1=(128, 128, 128)),  # Figure 11
    reduction_b=ReductionBWidths(branch0=(256, 384), branch1=(256, 256), branch2=(256, 256, 256)),  # Figure 12
    block_c=TwoBranchWidths(branch0=192, branch1=(192, 192, 192)),  # Figure 13
    repeats=BlockCounts(a=5, b=10, c=5),
    scales=PAPER_SCALES,
    last_block_relu=True,
    last_block_scale=PAPER_SCALES.c,
    final_conv=None,
)


# Inception-v4 (Figures 3-9): no residual connections; each block concatenates its branches.


@dataclass(frozen=True)
class InceptionAWidths:
    """Inception-A (Figure 4): [1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1]."""

    branch0: int
    branch1: tuple[int, int]
    branch2: tuple[int, int, int]
    pool_proj: int


@dataclass(frozen=True)
class InceptionBWidths:
    """Inception-B (Figure 5): [1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1]."""

    branch0: int
    branch1: tuple[int, int, int]
    branch2: tuple[int, int, int, int, int]
    pool_proj: int


@dataclass(frozen=True)
class InceptionCWidths:
    """Inception-C (Figure 6): [1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3, 3x1) | avg pool -> 1x1]."""

    branch0: int
    branch1: tuple[int, int]  # the 1x1, then each of the split pair
    branch2: tuple[int, int, int, int]  # the 1x1, 3x1, 1x3, then each of the split pair
    pool_proj: int


@dataclass(frozen=True)
class InceptionV4ReductionBWidths:
    """Inception-v4's Reduction-B (Figure 8): [1x1 -> 3x3 s2 V | 1x1 -> 1x7 -> 7x1 -> 3x3 s2 V | max pool]."""

    branch0: tuple[int, int]
    branch1: tuple[int, int, int, int]


@dataclass(frozen=True)
class InceptionV4Config:
    """Inception-v4: the paper's network without residual connections, as a table like the others."""

    variant: str
    stem: StemName
    block_a: InceptionAWidths
    reduction_a: ReductionAWidths
    block_b: InceptionBWidths
    reduction_b: InceptionV4ReductionBWidths
    block_c: InceptionCWidths
    repeats: BlockCounts
    num_classes: int = 1000
    head_hidden: tuple[int, ...] = ()
    drop_rate: float = 0.2
    in_channels: int = 3
    input_size: int = 299

    residual = False  # no scales, no shortcuts: the residual experiments do not apply
    network = "Inception-v4"


INCEPTION_V4 = InceptionV4Config(
    variant="inception-v4",
    stem="inception-v4-released",  # Figure 3, the paper-v2 stem, in the order timm's weights need
    block_a=InceptionAWidths(branch0=96, branch1=(64, 96), branch2=(64, 96, 96), pool_proj=96),  # Figure 4
    reduction_a=ReductionAWidths(k=192, l=224, m=256, n=384),  # Table 1
    block_b=InceptionBWidths(branch0=384, branch1=(192, 224, 256), branch2=(192, 192, 224, 224, 256), pool_proj=128),
    reduction_b=InceptionV4ReductionBWidths(branch0=(192, 192), branch1=(256, 256, 320, 320)),  # Figure 8
    block_c=InceptionCWidths(branch0=256, branch1=(384, 256), branch2=(384, 448, 512, 256), pool_proj=256),
    repeats=BlockCounts(a=4, b=7, c=3),  # Figure 9
)

#: Any network's table.
NetworkConfig = InceptionResNetConfig | InceptionV4Config


VARIANTS: Mapping[str, NetworkConfig] = {c.variant: c for c in (RELEASED, PAPER_V2, PAPER_V1, INCEPTION_V4)}

VARIANT_DESCRIPTIONS: Mapping[str, str] = {
    "released": "The ImageNet network of the TF-slim checkpoint, Keras and timm: stem + Mixed_5b, "
    "10 x A, 20 x B, 10 x C, 1x1 conv to 1536. Real weights load into it.",
    "paper-v2": "Inception-ResNet-v2 as the paper draws it: Inception-v4 stem, 5 x A, 10 x B, 5 x C "
    "(widths made consistent where the paper's do not add up).",
    "paper-v1": "Inception-ResNet-v1 as the paper draws it: its own cheaper stem and narrower blocks, "
    "5 x A, 10 x B, 5 x C.",
    "inception-v4": "Inception-v4, the paper's network without residual connections: the paper-v2 stem, "
    "4 x A, 7 x B, 3 x C Inception blocks. timm's ImageNet weights load into it.",
}
