"""Inception-ResNet-v2, Inception-v4 and their relatives, written to read like the paper.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (AAAI 2017, arXiv 1602.07261).

The building blocks are a conv-BN-ReLU unit and one class per block type, each taking its widths
as arguments. A variant is a table of widths, repeats and residual scales (:mod:`explorer.nets.tables`,
the data); :func:`build_model` turns a table into a network (this module, the code):
:class:`InceptionResNet` for the residual networks (v1 and v2), :class:`InceptionV4` for the paper's baseline
without residual connections. Module names and shapes equal timm's (``inception_resnet_v2``,
``inception_v4``), so timm's ImageNet weights load with ``strict=True``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from explorer.nets.blocks import (
    Block8,
    Block17,
    Block35,
    InceptionResNetBlock,
    Mixed5b,
    ReductionA,
    ReductionB,
    RepeatedBlocks,
)
from explorer.nets.inception_blocks import InceptionA, InceptionB, InceptionC, InceptionV4ReductionB
from explorer.nets.stems import build_stem
from explorer.nets.tables import InceptionResNetConfig, InceptionV4Config, NetworkConfig
from explorer.nets.units import ConvBnRelu


def is_within(path: str, scope: str) -> bool:
    """Whether a module path (``repeat.3.branch1``) is ``scope`` or lies inside it (``repeat.3``, ``repeat``)."""
    return path == scope or path.startswith(scope + ".")


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
        """Global average pooling, dropout, hidden layers if any, and the classifier; the head's module names."""
        self.num_features = width
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head_drop = nn.Dropout(self.config.drop_rate)
        names: tuple[str, ...] = ("global_pool", "head_drop")
        self.head_hidden: nn.Sequential | None = None
        if self.config.head_hidden:  # only fine-tuned heads have them: the released network's state dict stays timm's
            layers: list[nn.Module] = []
            for hidden in self.config.head_hidden:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            self.head_hidden = nn.Sequential(*layers)
            names += ("head_hidden",)
        name = "last_linear" if isinstance(self.config, InceptionV4Config) else "classif"
        self.add_module(name, nn.Linear(width, self.config.num_classes))
        return (*names, name)

    def component_of(self, path: str) -> Component | None:
        """The component a module path (``repeat.3.branch1``, ``features.7``) belongs to."""
        for comp in self.components:
            if any(is_within(path, name) for name in comp.modules):
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
        pooled = self.head_drop(self.global_pool(features))
        return self.classifier(pooled if self.head_hidden is None else self.head_hidden(pooled))

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


class InceptionResNet(InceptionNetwork):
    """An Inception-ResNet built from a variant table: the released v2, the paper's v2 or its v1."""

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


# The name people search for (and timm's); one class builds v1 and v2 from their tables.
InceptionResNetV2 = InceptionResNet
