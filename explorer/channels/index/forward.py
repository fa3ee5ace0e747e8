"""The forward the index runs: the network's blocks, each output reduced to its channels' maxima as it appears.

Only per-image (B, C) numbers leave each block, so the maps never leave the device; the head is not run (no
block lies after it). On a GPU the whole of it is one ``torch.compile`` graph, in which each reduction fuses
with the kernels around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import Tensor, nn

from explorer.analysis.receptive import ReceptiveField, receptive_fields
from explorer.channels.index.top import channel_maxima, channel_maxima_only
from explorer.nets import InceptionNetwork, model_from_config


class ChannelMaxima(nn.Module):
    """The model's blocks in order; returns every block's channel maxima, their grid positions and channel means,
    concatenated over the blocks in forward order (three (B, total channels) tensors under "maxima", "positions"
    and "means"); with ``head``, the network's ``top`` classes per image and their probabilities ("top_classes",
    "top_probabilities"); with ``atlas`` blocks, ``per_image`` spatial activation vectors of each (a list of
    (B, per_image, C) float16 under "vectors", their flat grid positions under "spots"), at the places ``picks``
    ((B, per_image) in [0, 1)) chooses across the block's grid.

    With ``keep_maps``, the positions are left to :func:`locate` afterwards, for the few maxima that enter the top
    K: every block's output comes back under "maps" instead (the outputs are written anyway, as the next block's
    input; keeping them costs memory, not time). A channel maximum alone fuses into the kernels around it; finding
    its position in the same pass costs about a fifth of the forward on a GPU.
    """

    def __init__(
        self,
        model: InceptionNetwork,
        packed: bool = False,
        keep_maps: bool = False,
        head: bool = True,
        atlas: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.packed = packed  # for torch.compile: explorer.channels.index.top.channel_maxima says why
        self.keep_maps = keep_maps
        self.names = model.block_names()
        unknown = [name for name in atlas if name not in self.names]
        if unknown:
            raise ValueError(f"no block {unknown[0]!r} to keep atlas vectors of; blocks are {', '.join(self.names)}")
        self.atlas = tuple(atlas)
        self.top = min(TOP_CLASSES, model.config.num_classes) if head else 0
        self.model = model  # its blocks in order, then its head

    def forward(self, x: Tensor, picks: Tensor | None = None) -> dict[str, Tensor | list[Tensor]]:
        maxima, positions, means, maps, vectors, spots = [], [], [], [], [], []
        for name, block in self.model.blocks():
            x = block(x)
            if self.keep_maps:
                m, mu = channel_maxima_only(x)
                maps.append(x)
            else:
                m, p, mu = channel_maxima(x, self.packed)
                positions.append(p)
            maxima.append(m)
            means.append(mu)
            if name in self.atlas:
                v, s = _spatial_vectors(x, picks)
                vectors.append(v)
                spots.append(s)
        out: dict[str, Tensor | list[Tensor]] = {"maxima": torch.cat(maxima, 1), "means": torch.cat(means, 1)}
        if self.keep_maps:
            out["maps"] = maps
        else:
            out["positions"] = torch.cat(positions, 1)
        if self.top:
            best = self.model.forward_head(x).float().softmax(1).topk(self.top, 1)
            out["top_classes"], out["top_probabilities"] = best.indices, best.values
        if self.atlas:
            out["vectors"], out["spots"] = vectors, spots
        return out


#: How many of the network's classes the index records per image.
TOP_CLASSES = 5


def _spatial_vectors(output: Tensor, picks: Tensor) -> tuple[Tensor, Tensor]:
    """The activation vectors (B, P, C) float16 at P places of the grid per image, chosen by ``picks`` (B, P) in
    [0, 1), and those places (B, P) as flat row-major positions."""
    batch, channels, height, width = output.shape
    spots = (picks * (height * width)).long().clamp(max=height * width - 1)
    if output.is_contiguous():
        grid = output.reshape(batch, channels, height * width)
        taken = grid.gather(2, spots[:, None, :].expand(batch, channels, spots.shape[1])).transpose(1, 2)
    else:  # channels-last: the (B, H*W, C) view, as explorer.channels.index.top's _grid takes it
        grid = output.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        taken = grid.gather(1, spots[:, :, None].expand(batch, spots.shape[1], channels))
    return taken.to(torch.float16), spots


def locate(maps: Sequence[Tensor], new: Tensor, places: Tensor, every_slot: bool = False) -> Tensor:
    """Where in its block's grid each new top-K entry's maximum lies: the flat position (row-major; the first of
    equal maxima), as :func:`~explorer.channels.index.top.channel_maxima` gives it. ``maps`` are the blocks' outputs
    (B, C_b, H, W) in order; ``new`` (C, K) marks the slots of the top-K (channels concatenated over the blocks)
    that entries of this batch took, ``places`` their images' places in the batch. Other slots' are left 0.

    Only the asked-for maps are read (per block a gather of (n, H, W), then an argmax), which needs the count of
    new entries on the host. ``every_slot`` reads one map for every slot instead (K of the batch's maps' bytes,
    a few hundred MB at batch 256) and asks the device nothing: on a GPU, waiting for that count would leave
    the GPU idle while the next batch is launched."""
    if every_slot:
        found, first = [], 0
        for m in maps:
            width = m.shape[1]
            channels = torch.arange(width, device=m.device)[:, None]
            found.append(m[places[first : first + width], channels].flatten(2).argmax(2))
            first += width
        return torch.where(new, torch.cat(found), 0)
    channels, slots = new.nonzero(as_tuple=True)  # channels ascending
    images = places[channels, slots]
    widths = [m.shape[1] for m in maps]
    bounds = torch.tensor(list(accumulate(widths)), device=channels.device)
    cuts = torch.searchsorted(channels, bounds).tolist()  # where each block's channels end among the new ones
    found = torch.zeros_like(places)
    start = first = 0
    for m, end, width in zip(maps, cuts, widths, strict=True):
        if end > start:
            found[channels[start:end], slots[start:end]] = (
                m[images[start:end], channels[start:end] - first].flatten(1).argmax(1)
            )
        start, first = end, first + width
    return found


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
