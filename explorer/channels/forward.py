"""The forward the index runs: the network's blocks, each output reduced to its channels' maxima as it appears.

Only per-image (B, C) numbers leave each block, so the maps never leave the device; the head is not run (no
block lies after it). On a GPU the whole of it is one ``torch.compile`` graph, in which each reduction fuses
with the kernels around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from explorer.analysis.receptive import ReceptiveField, receptive_fields
from explorer.channels.top import channel_maxima
from explorer.nets import InceptionNetwork, model_from_config


class ChannelMaxima(nn.Module):
    """The model's blocks in order; returns every block's channel maxima, their grid positions and channel means,
    concatenated over the blocks in forward order: three (B, total channels) tensors."""

    def __init__(self, model: InceptionNetwork, packed: bool = False) -> None:
        super().__init__()
        self.packed = packed  # for torch.compile: explorer.channels.top.channel_maxima says why
        self.names = model.block_names()
        self.blocks = nn.ModuleList(block for _, block in model.blocks())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        maxima, positions, means = [], [], []
        for block in self.blocks:
            x = block(x)
            m, p, mu = channel_maxima(x, self.packed)
            maxima.append(m)
            positions.append(p)
            means.append(mu)
        return torch.cat(maxima, 1), torch.cat(positions, 1), torch.cat(means, 1)


@dataclass(frozen=True)
class BlockShape:
    """What the index records of a block: its channels, its grid and the receptive field of one grid cell."""

    name: str
    channels: int
    grid: tuple[int, int]
    field: ReceptiveField

    def to_json(self) -> dict:
        f = self.field
        return {
            "name": self.name,
            "channels": self.channels,
            "grid": list(self.grid),
            "receptive_field": {"size": f.size, "stride": f.stride, "start": f.start},
        }


def block_shapes(model: InceptionNetwork) -> list[BlockShape]:
    """Each block's shape at the network's input size, from a weightless copy on the ``meta`` device."""
    meta = model_from_config(model.config, device="meta")
    fields = receptive_fields(meta)
    size = model.config.input_size
    x = torch.empty(1, model.config.in_channels, size, size, device="meta")
    shapes = []
    for name, block in meta.blocks():
        x = block(x)
        shapes.append(BlockShape(name, x.shape[1], (x.shape[2], x.shape[3]), fields[name]))
    return shapes
