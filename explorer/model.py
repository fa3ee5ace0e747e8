"""Inception-ResNet-v2, Inception-v4 and their relatives, written to read like the paper.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (AAAI 2017, arXiv 1602.07261).

The building blocks are a conv-BN-ReLU unit and one class per block type, each taking its widths
as arguments. A variant is a table of widths, repeats and residual scales (:mod:`explorer.variants`,
the data); :func:`build_model` turns a table into a network (this module, the code):
:class:`InceptionResNetV2` for the residual networks, :class:`InceptionV4` for the paper's baseline
without residual connections. Module names and shapes equal timm's (``inception_resnet_v2``,
``inception_v4``), so timm's ImageNet weights load with ``strict=True``.

Why the Inception-ResNet stem has no class of its own: in every released implementation (TF-slim,
Keras, timm) the stem's layers sit directly on the network (``conv2d_1a`` ... ``maxpool_5a``), and the
state_dict keys must match timm's. So a stem here is a sequence of named top-level units; the
paper-v2 stem's three branching steps are classes (:class:`Mixed3a`, :class:`Mixed4a`,
:class:`Mixed5a`, named as in the Inception-v4 code lineage). Inception-v4 keeps timm's layout: every
unit and block in one ``features`` sequence, the classifier as ``last_linear``.

Padding follows the paper's notation: ``"valid"`` (the paper's "V", the grid shrinks) or
``"same"`` (everything else).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from explorer.variants import (  # noqa: F401 (re-exported: the tables used to live here)
    INCEPTION_V4,
    PAPER_SCALES,
    PAPER_V1,
    PAPER_V2,
    RELEASED,
    VARIANT_DESCRIPTIONS,
    VARIANTS,
    BlockCounts,
    InceptionResNetConfig,
    InceptionV4Config,
    NetworkConfig,
    PaperContradiction,
    ResidualScales,
    StemName,
    paper_contradictions,
)

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
        """The branches in concatenation order (a subclass with other names says which)."""
        return [module for name, module in self.named_children() if name.startswith("branch")]

    def branch_names(self) -> list[str]:
        by_module = {id(module): name for name, module in self.named_children()}
        return [by_module[id(module)] for module in self.branches()]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches()], 1)


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


# Inception-v4's own blocks (Figures 4-8): concatenation, no residual connection.


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


def avg_pool_projection(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 average pool (stride 1) then a 1x1 unit: the pooling branch of the Inception blocks.

    TF's "SAME" average pool divides by the cells inside the image, hence no padded zeros.
    """
    return nn.Sequential(
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), ConvBnRelu(in_channels, out_channels, 1)
    )


class RepeatedBlocks(nn.Sequential):
    """A run of identical residual blocks (``repeat``, ``repeat_1``, ``repeat_2``)."""


# --------------------------------------------------------------------------------------------
# Stems: sequences of named top-level units (see the module docstring for why)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A part of the network as people talk about it: the stem, the A blocks, ..."""

    key: str
    title: str
    modules: tuple[str, ...]


class InceptionNetwork(nn.Module):
    """What every network here shares: components, blocks in forward order, explicit forward methods.

    ``forward`` gives logits; :meth:`forward_intermediates` gives every block's output as well.
    Neither keeps state on the module, so one model in eval mode may serve several threads.
    """

    config: NetworkConfig
    components: tuple[Component, ...]
    num_features: int
    global_pool: nn.Module
    head_drop: nn.Module

    def __init__(self, config: NetworkConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = config
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self._build(config)
        if self.classifier.weight.device.type != "meta":  # a meta model has no values to set (and
            self._init_weights()  # drawing "random" meta values would import torch's compiler)

    def _build(self, config: NetworkConfig) -> None:
        raise NotImplementedError

    @property
    def classifier(self) -> nn.Linear:
        """The last fully connected layer (``classif`` in timm's Inception-ResNet-v2, ``last_linear`` in its v4)."""
        raise NotImplementedError

    def _head(self, width: int) -> tuple[str, ...]:
        """Global average pooling, dropout and the classifier; the head's module names."""
        self.num_features = width
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head_drop = nn.Dropout(self.config.drop_rate)
        name = "last_linear" if isinstance(self.config, InceptionV4Config) else "classif"
        self.add_module(name, nn.Linear(width, self.config.num_classes))
        return ("global_pool", "head_drop", name)

    def component_of(self, path: str) -> Component | None:
        """The component a module path (``repeat.3.branch1``, ``features.7``) belongs to."""
        for comp in self.components:
            if any(path == name or path.startswith(name + ".") for name in comp.modules):
                return comp
        return None

    def blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """Every block in forward order, named as in the state_dict (``repeat.0``, ``features.6``)."""
        raise NotImplementedError

    def block_names(self) -> list[str]:
        return [name for name, _ in self.blocks()]

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

    def forward_features(self, x: Tensor) -> Tensor:
        for _, block in self.blocks():
            x = block(x)
        return x

    def forward_head(self, features: Tensor) -> Tensor:
        return self.classifier(self.head_drop(self.global_pool(features)))

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


class InceptionResNetV2(InceptionNetwork):
    """An Inception-ResNet built from a variant table (released, paper-v2, paper-v1)."""

    config: InceptionResNetConfig

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

        components.append(Component("head", "Head (pool, dropout, FC)", self._head(width)))

        self.components: tuple[Component, ...] = tuple(components)
        self.feature_stages: tuple[str, ...] = tuple(
            name for comp in components if comp.key != "head" for name in comp.modules
        )

    @property
    def classifier(self) -> nn.Linear:
        return self.classif

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.feature_stages:  # each run of blocks called as one module, as timm does
            x = getattr(self, stage)(x)
        return x

    def blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for stage in self.feature_stages:
            module = getattr(self, stage)
            if isinstance(module, RepeatedBlocks):
                for index, block in enumerate(module):
                    yield f"{stage}.{index}", block
            else:
                yield stage, module


class InceptionV4(InceptionNetwork):
    """Inception-v4 (Figure 9): the stem, 4 x Inception-A, Reduction-A, 7 x B, Reduction-B, 3 x C, the head.

    No residual connections: the baseline the paper's Inception-ResNets are compared with. timm's layout:
    every unit and block in one ``features`` sequence.
    """

    config: InceptionV4Config

    def _build(self, c: InceptionV4Config) -> None:
        stem, width = build_stem(c.stem, c.in_channels)
        parts: list[tuple[str, str, list[nn.Module]]] = [("stem", "Stem", [module for _, module in stem])]
        a, b, cc = c.block_a, c.block_b, c.block_c
        blocks_a = [InceptionA(width, a.branch0, a.branch1, a.branch2, a.pool_proj) for _ in range(c.repeats.a)]
        width = blocks_a[-1].out_channels
        parts.append(("block_a", f"Inception-A x{c.repeats.a}", blocks_a))
        r = c.reduction_a
        reduction_a = ReductionA(width, r.k, r.l, r.m, r.n)
        width = reduction_a.out_channels
        parts.append(("reduction_a", "Reduction-A", [reduction_a]))
        blocks_b = [InceptionB(width, b.branch0, b.branch1, b.branch2, b.pool_proj) for _ in range(c.repeats.b)]
        width = blocks_b[-1].out_channels
        parts.append(("block_b", f"Inception-B x{c.repeats.b}", blocks_b))
        reduction_b = InceptionV4ReductionB(width, c.reduction_b.branch0, c.reduction_b.branch1)
        width = reduction_b.out_channels
        parts.append(("reduction_b", "Reduction-B", [reduction_b]))
        blocks_c = [InceptionC(width, cc.branch0, cc.branch1, cc.branch2, cc.pool_proj) for _ in range(c.repeats.c)]
        width = blocks_c[-1].out_channels
        parts.append(("block_c", f"Inception-C x{c.repeats.c}", blocks_c))

        self.features = nn.Sequential(*[module for _, _, modules in parts for module in modules])
        components, index = [], 0
        for key, title, modules in parts:
            names = tuple(f"features.{i}" for i in range(index, index + len(modules)))
            components.append(Component(key, title, names))
            index += len(modules)
        components.append(Component("head", "Head (pool, dropout, FC)", self._head(width)))
        self.components = tuple(components)

    @property
    def classifier(self) -> nn.Linear:
        return self.last_linear

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for index, block in enumerate(self.features):
            yield f"features.{index}", block


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(InceptionResNetConfig) if f.name != "variant")
V4_FIELDS = tuple(f.name for f in dataclasses.fields(InceptionV4Config) if f.name != "variant")


def make_config(variant: str = "released", **overrides: object) -> NetworkConfig:
    """A variant's table with some entries replaced.

    ``repeats`` takes ``(a, b, c)`` or a :class:`BlockCounts`; ``scales`` takes one number for all
    three block types, ``(a, b, c)`` or a :class:`ResidualScales`. Where the last C block is like
    the others (the paper variants) its scale follows ``scales``; where it has a scale of its own
    (the released network's 1.0) that stays unless ``last_block_scale`` is given. Inception-v4 has
    no residual connections: ``scales`` and ``shortcuts`` do not apply to it.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of: {', '.join(VARIANTS)}")
    base = VARIANTS[variant]
    fields = CONFIG_FIELDS if base.residual else V4_FIELDS
    unknown = sorted(set(overrides) - set(fields))
    if unknown and not base.residual and not set(unknown) - set(CONFIG_FIELDS):
        raise ValueError(f"{variant} has no residual connections: {', '.join(unknown)} do(es) not apply to it")
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of: {', '.join(fields)}")
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
) -> InceptionNetwork:
    """Build a variant in eval mode, with seeded random weights (``seed=None`` leaves torch's RNG alone).

    >>> build_model("released", repeats=(5, 10, 5), scales=1.0)  # doctest: +SKIP
    """
    return model_from_config(make_config(variant, **overrides), seed=seed, device=device)


def model_from_config(
    config: NetworkConfig, *, seed: int | None = 0, device: torch.device | str | None = None
) -> InceptionNetwork:
    """Build the network a config describes, in eval mode, with seeded random weights."""
    network = InceptionResNetV2 if config.residual else InceptionV4
    if seed is None:
        return network(config, device=device).eval()
    # A private RNG stream: building a model must not disturb anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return network(config, device=device).eval()


def _as_dataclass(cls: type, value: object, kind: type, name: str):
    if isinstance(value, cls):
        return value
    try:
        values = [kind(v) for v in value]  # type: ignore[attr-defined]
        return cls(*values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes three numbers (A, B, C), got {value!r}") from None
