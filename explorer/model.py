"""Inception-ResNet-v2 and its relatives, written to read like the paper.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (AAAI 2017, arXiv 1602.07261).

The building blocks are a conv-BN-ReLU unit and one class per block type, each taking its widths
as arguments. A variant is a table (:class:`InceptionResNetConfig`) of widths, repeats and
residual scales; :func:`build_model` turns a table into a network. Three tables ship:

``released``
    The network of the TF-slim checkpoint, Keras ``InceptionResNetV2`` and timm
    ``inception_resnet_v2``. Module names and parameter shapes equal timm's, so timm's ImageNet
    weights load with ``strict=True``.
``paper-v2`` / ``paper-v1``
    Inception-ResNet-v2 and -v1 as the paper draws them (Figures 3-19): the paper's stems, 5 x A,
    10 x B, 5 x C, no final 1x1 conv. Where the paper's IR-v2 widths do not add up, the built
    network takes the consistent reading recorded in :data:`PAPER_CONTRADICTIONS`.

Why the stem has no class of its own: in every released implementation (TF-slim, Keras, timm) the
stem's layers sit directly on the network (``conv2d_1a`` ... ``maxpool_5a``), and the state_dict
keys must match timm's. So a stem here is a sequence of named top-level units; the paper-v2 stem's
three branching steps are classes (:class:`Mixed3a`, :class:`Mixed4a`, :class:`Mixed5a`, named as
in the Inception-v4 code lineage).

Padding follows the paper's notation: ``"valid"`` (the paper's "V", the grid shrinks) or
``"same"`` (everything else).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

Padding = Literal["same", "valid"]
KernelSize = int | tuple[int, int]

#: Batch-norm epsilon of the TF-slim checkpoint (and timm's port of it).
BN_EPS = 1e-3


# --------------------------------------------------------------------------------------------
# Units and blocks
# --------------------------------------------------------------------------------------------


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
        return [module for name, module in self.named_children() if name.startswith("branch")]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches()], 1)


class Mixed3a(ConcatBranches):
    """Paper-v2 stem, Figure 3: [3x3 max pool s2 V | 3x3 conv s2 V]."""

    def __init__(self, in_channels: int, conv: int) -> None:
        super().__init__()
        self.branch0 = max_pool()
        self.branch1 = ConvBnRelu(in_channels, conv, 3, stride=2, padding="valid")
        self.out_channels = in_channels + conv


class Mixed4a(ConcatBranches):
    """Paper-v2 stem, Figure 3: [1x1 -> 3x3 V | 1x1 -> 7x1 -> 1x7 -> 3x3 V]."""

    def __init__(self, in_channels: int, branch0: tuple[int, int], branch1: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.branch0 = chain(in_channels, (branch0[0], 1), (branch0[1], 3, 1, "valid"))
        a, b, c, d = branch1
        self.branch1 = chain(in_channels, (a, 1), (b, (7, 1)), (c, (1, 7)), (d, 3, 1, "valid"))
        self.out_channels = branch0[-1] + d


class Mixed5a(ConcatBranches):
    """Paper-v2 stem, Figure 3: [3x3 conv s2 V | max pool s2 V]."""

    def __init__(self, in_channels: int, conv: int) -> None:
        super().__init__()
        self.branch0 = ConvBnRelu(in_channels, conv, 3, stride=2, padding="valid")
        self.branch1 = max_pool()
        self.out_channels = conv + in_channels


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
        # TF's "SAME" average pool divides by the cells inside the image, hence no padded zeros.
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            ConvBnRelu(in_channels, pool_proj, 1),
        )
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


# --------------------------------------------------------------------------------------------
# Stems: sequences of named top-level units (see the module docstring for why)
# --------------------------------------------------------------------------------------------

StemName = Literal["released", "inception-v4", "inception-resnet-v1"]


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
    if kind == "inception-v4":  # Figure 3, shared by Inception-v4 and Inception-ResNet-v2
        mixed_3a = Mixed3a(64, 96)
        mixed_4a = Mixed4a(mixed_3a.out_channels, (64, 96), (64, 64, 64, 96))
        mixed_5a = Mixed5a(mixed_4a.out_channels, 192)
        layers += [("mixed_3a", mixed_3a), ("mixed_4a", mixed_4a), ("mixed_5a", mixed_5a)]
        return layers, mixed_5a.out_channels
    raise ValueError(f"unknown stem {kind!r}; expected one of: released, inception-v4, inception-resnet-v1")


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
    drop_rate: float = 0.2  # the paper's dropout "keep 0.8"; inactive in eval mode
    shortcuts: bool = True  # False removes every residual connection (the teaching experiment)
    in_channels: int = 3
    input_size: int = 299

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

VARIANTS: Mapping[str, InceptionResNetConfig] = {c.variant: c for c in (RELEASED, PAPER_V2, PAPER_V1)}

VARIANT_DESCRIPTIONS: Mapping[str, str] = {
    "released": "The ImageNet network of the TF-slim checkpoint, Keras and timm: stem + Mixed_5b, "
    "10 x A, 20 x B, 10 x C, 1x1 conv to 1536. Real weights load into it.",
    "paper-v2": "Inception-ResNet-v2 as the paper draws it: Inception-v4 stem, 5 x A, 10 x B, 5 x C "
    "(widths made consistent where the paper's do not add up).",
    "paper-v1": "Inception-ResNet-v1 as the paper draws it: its own cheaper stem and narrower blocks, "
    "5 x A, 10 x B, 5 x C.",
}


# --------------------------------------------------------------------------------------------
# Where the paper contradicts itself
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperContradiction:
    """One place where the paper's numbers do not add up, and what was built instead."""

    variant: str
    where: str
    paper_says: int
    built: int
    why: str


def paper_contradictions() -> list[PaperContradiction]:
    """The paper-v2 width contradictions, with the widths taken from the built network."""
    model = InceptionResNetV2(PAPER_V2, device="meta")
    a_width = model.repeat[0].out_channels
    b_width = model.repeat_1[0].out_channels
    c_width = model.repeat_2[0].out_channels
    red_a = PAPER_V2.reduction_a
    red_b = PAPER_V2.reduction_b
    red_b_added = red_b.branch0[-1] + red_b.branch1[-1] + red_b.branch2[-1]
    return [
        PaperContradiction(
            "paper-v2",
            "Inception-ResNet-B, linear 1x1 (Figure 17)",
            paper_says=1154,
            built=b_width,
            why=f"Reduction-A (Table 1: n={red_a.n}, m={red_a.m}) on the {a_width}-channel A blocks gives "
            f"{a_width} + {red_a.n} + {red_a.m} = {b_width} channels, and the residual addition needs the "
            f"linear 1x1 to give back exactly its input's width.",
        ),
        PaperContradiction(
            "paper-v2",
            "Reduction-B, output (Figure 18)",
            paper_says=1154 + red_b_added,
            built=c_width,
            why=f"Reduction-B adds {red_b.branch0[-1]} + {red_b.branch1[-1]} + {red_b.branch2[-1]} = "
            f"{red_b_added} channels to its input: {b_width} + {red_b_added} = {c_width} with the width "
            f"built above (the paper's 1154 would give {1154 + red_b_added}).",
        ),
        PaperContradiction(
            "paper-v2",
            "Inception-ResNet-C, linear 1x1 (Figure 19)",
            paper_says=2048,
            built=c_width,
            why=f"The C blocks' input is Reduction-B's {c_width} channels, and the residual addition needs "
            f"the linear 1x1 to match it; 2048 matches neither reading.",
        ),
    ]


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A part of the network as people talk about it: the stem, the A blocks, ..."""

    key: str
    title: str
    modules: tuple[str, ...]


class InceptionResNetV2(nn.Module):
    """An Inception-ResNet built from a variant table.

    ``forward`` gives logits; :meth:`forward_intermediates` gives every block's output as well.
    Neither keeps state on the module, so one model in eval mode may serve several threads.
    """

    def __init__(self, config: InceptionResNetConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = config
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self._build(config)

    def _build(self, c: InceptionResNetConfig) -> None:
        components: list[Component] = []

        stem, width = build_stem(c.stem, c.in_channels)
        for name, module in stem:
            self.add_module(name, module)
        components.append(Component("stem", "Stem", tuple(name for name, _ in stem)))

        if c.mixed_5b is not None:
            w = c.mixed_5b
            self.mixed_5b = Mixed5b(width, w.branch0, w.branch1, w.branch2, w.pool_proj)
            width = self.mixed_5b.out_channels
            components.append(Component("mixed_5b", "Mixed_5b", ("mixed_5b",)))

        a = c.block_a
        self.repeat = RepeatedBlocks(
            *[
                Block35(width, a.branch0, a.branch1, a.branch2, c.scales.a, shortcut=c.shortcuts)
                for _ in range(c.repeats.a)
            ]
        )
        components.append(Component("block_a", f"Inception-ResNet-A x{c.repeats.a}", ("repeat",)))

        r = c.reduction_a
        self.mixed_6a = ReductionA(width, r.k, r.l, r.m, r.n)
        width = self.mixed_6a.out_channels
        components.append(Component("reduction_a", "Reduction-A", ("mixed_6a",)))

        b = c.block_b
        self.repeat_1 = RepeatedBlocks(*[Block17(width, b.branch0, b.branch1, c.scales.b) for _ in range(c.repeats.b)])
        components.append(Component("block_b", f"Inception-ResNet-B x{c.repeats.b}", ("repeat_1",)))

        rb = c.reduction_b
        self.mixed_7a = ReductionB(width, rb.branch0, rb.branch1, rb.branch2)
        width = self.mixed_7a.out_channels
        components.append(Component("reduction_b", "Reduction-B", ("mixed_7a",)))

        w8 = c.block_c
        n_plain = c.repeats.c - 1 if c.splits_last_block else c.repeats.c
        self.repeat_2 = RepeatedBlocks(*[Block8(width, w8.branch0, w8.branch1, c.scales.c) for _ in range(n_plain)])
        c_modules: tuple[str, ...] = ("repeat_2",)
        if c.splits_last_block:
            self.block8 = Block8(
                width, w8.branch0, w8.branch1, c.last_block_scale, activate=c.last_block_relu, shortcut=c.shortcuts
            )
            c_modules += ("block8",)
        components.append(Component("block_c", f"Inception-ResNet-C x{c.repeats.c}", c_modules))

        if c.final_conv is not None:
            self.conv2d_7b = ConvBnRelu(width, c.final_conv, 1)
            width = c.final_conv
            components.append(Component("final_conv", "Final 1x1 conv", ("conv2d_7b",)))

        self.num_features = width
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head_drop = nn.Dropout(c.drop_rate)
        self.classif = nn.Linear(width, c.num_classes)
        components.append(Component("head", "Head (pool, dropout, FC)", ("global_pool", "head_drop", "classif")))

        self.components: tuple[Component, ...] = tuple(components)
        self.feature_stages: tuple[str, ...] = tuple(
            name for comp in components if comp.key != "head" for name in comp.modules
        )
        if self.classif.weight.device.type != "meta":  # a meta model has no values to set (and
            self._init_weights()  # drawing "random" meta values would import torch's compiler)

    @torch.no_grad()
    def _init_weights(self) -> None:
        """He-normal convolutions, zero biases, a small classifier.

        PyTorch's default initialisation shrinks the signal layer by layer, so that a random
        network's deep maps are flat; with He scaling they keep their structure, and random-weights
        activations are worth looking at.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """Every block in forward order, named as in the state_dict (``repeat.0``, not ``repeat_0``)."""
        for stage in self.feature_stages:
            module = getattr(self, stage)
            if isinstance(module, RepeatedBlocks):
                for index, block in enumerate(module):
                    yield f"{stage}.{index}", block
            else:
                yield stage, module

    def block_names(self) -> list[str]:
        return [name for name, _ in self.blocks()]

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.feature_stages:
            x = getattr(self, stage)(x)
        return x

    def forward_head(self, features: Tensor) -> Tensor:
        return self.classif(self.head_drop(self.global_pool(features)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: Tensor) -> tuple[Tensor, OrderedDict[str, Tensor]]:
        """Logits and every block's output, in forward order, keyed by state_dict module name.

        The outputs are the very tensors the next block consumes (nothing is copied); no hooks
        are involved, so concurrent calls on one shared eval-mode model do not interfere.
        """
        logits, intermediates, _ = self.forward_intermediates_and_residuals(x, residuals=False)
        return logits, intermediates

    def forward_intermediates_and_residuals(
        self, x: Tensor, residuals: bool = True
    ) -> tuple[Tensor, OrderedDict[str, Tensor], OrderedDict[str, Tensor]]:
        """As :meth:`forward_intermediates`, plus each residual block's scaled residual branch
        (what is added to the shortcut), keyed by block name; empty when ``residuals`` is False."""
        intermediates: OrderedDict[str, Tensor] = OrderedDict()
        scaled: OrderedDict[str, Tensor] = OrderedDict()
        for name, block in self.blocks():
            if residuals and isinstance(block, InceptionResNetBlock):
                x, scaled[name] = block.forward_parts(x)
            else:
                x = block(x)
            intermediates[name] = x
        return self.forward_head(x), intermediates, scaled


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(InceptionResNetConfig) if f.name != "variant")


def make_config(variant: str = "released", **overrides: object) -> InceptionResNetConfig:
    """A variant's table with some entries replaced.

    ``repeats`` takes ``(a, b, c)`` or a :class:`BlockCounts`; ``scales`` takes one number for all
    three block types, ``(a, b, c)`` or a :class:`ResidualScales`. Where the last C block is like
    the others (the paper variants) its scale follows ``scales``; where it has a scale of its own
    (the released network's 1.0) that stays unless ``last_block_scale`` is given.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of: {', '.join(VARIANTS)}")
    unknown = sorted(set(overrides) - set(CONFIG_FIELDS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of: {', '.join(CONFIG_FIELDS)}")
    base = VARIANTS[variant]
    changes = dict(overrides)

    if "repeats" in changes:
        changes["repeats"] = _as_dataclass(BlockCounts, changes["repeats"], int, "repeats")
        if min(dataclasses.astuple(changes["repeats"])) < 1:
            raise ValueError("every block type needs at least one block (repeats >= 1)")
    if "scales" in changes:
        scales = changes["scales"]
        if isinstance(scales, int | float):
            scales = (scales, scales, scales)
        changes["scales"] = _as_dataclass(ResidualScales, scales, float, "scales")
        if "last_block_scale" not in changes and not base.splits_last_block:
            changes["last_block_scale"] = changes["scales"].c
    for field in ("num_classes", "input_size"):
        if field in changes and int(changes[field]) < 1:  # type: ignore[call-overload]
            raise ValueError(f"{field} must be positive")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def build_model(
    variant: str = "released",
    *,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    **overrides: object,
) -> InceptionResNetV2:
    """Build a variant in eval mode, with seeded random weights (``seed=None`` leaves torch's RNG alone).

    >>> build_model("released", repeats=(5, 10, 5), scales=1.0)  # doctest: +SKIP
    """
    return model_from_config(make_config(variant, **overrides), seed=seed, device=device)


def model_from_config(
    config: InceptionResNetConfig, *, seed: int | None = 0, device: torch.device | str | None = None
) -> InceptionResNetV2:
    """Build the network a config describes, in eval mode, with seeded random weights."""
    if seed is None:
        return InceptionResNetV2(config, device=device).eval()
    # A private RNG stream: building a model must not disturb anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InceptionResNetV2(config, device=device).eval()


def _as_dataclass(cls: type, value: object, kind: type, name: str):
    if isinstance(value, cls):
        return value
    try:
        values = [kind(v) for v in value]  # type: ignore[attr-defined]
        return cls(*values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes three numbers (A, B, C), got {value!r}") from None
