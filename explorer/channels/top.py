"""Each channel's K strongest images, kept on the device: a batch's channel maxima merged into a running top-K.

The order is the channel's maximum, highest first; equal maxima go by image order (the lower index first), so
that the result does not depend on how the images were cut into batches or shared between processes: merging
any split of the images gives the top-K of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: An empty slot's image: after every real one in the order (images are numbered below it).
NO_IMAGE = 2**31 - 1


@dataclass
class ChannelTop:
    """The K strongest images of C channels so far, and each channel's sum of spatial means.

    values, images and positions are (C, K): the channel maximum, the image's index (a position in the
    folder's sorted listing) and the flat grid position of the maximum; empty slots hold -inf and
    :data:`NO_IMAGE`. sums is (C,) float64; count the images seen.
    """

    values: Tensor
    images: Tensor
    positions: Tensor
    sums: Tensor
    count: int = 0

    @classmethod
    def empty(cls, channels: int, k: int, device: torch.device | str = "cpu") -> ChannelTop:
        return cls(
            torch.full((channels, k), -torch.inf, device=device),
            torch.full((channels, k), NO_IMAGE, dtype=torch.int64, device=device),
            torch.zeros((channels, k), dtype=torch.int64, device=device),
            torch.zeros(channels, dtype=torch.float64, device=device),
        )

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def add(self, maxima: Tensor, positions: Tensor, means: Tensor, images: Tensor) -> None:
        """Merge one batch: ``maxima``, ``positions`` and ``means`` (B, C) per image, ``images`` (B,) their indices."""
        self.sums += means.sum(0, dtype=torch.float64)
        self.count += maxima.shape[0]
        channels = maxima.shape[1]
        self._keep(
            torch.cat([self.values, maxima.t().float()], 1),
            torch.cat([self.images, images.to(self.images.device).expand(channels, -1)], 1),
            torch.cat([self.positions, positions.t().to(torch.int64)], 1),
        )

    def merge(self, other: ChannelTop) -> None:
        """Take in another part's top-K (another process's images, or an earlier run's)."""
        self.sums += other.sums.to(self.sums.device)
        self.count += other.count
        self._keep(
            torch.cat([self.values, other.values.to(self.values.device)], 1),
            torch.cat([self.images, other.images.to(self.images.device)], 1),
            torch.cat([self.positions, other.positions.to(self.positions.device)], 1),
        )

    def _keep(self, values: Tensor, images: Tensor, positions: Tensor) -> None:
        # One sort key per entry, unique within a channel: the value's bits made to order as integers (the high
        # half), then the image's place reversed (the low half), so that equal values go by image order. A
        # single top-k on it is much cheaper than sorting twice.
        bits = values.contiguous().view(torch.int32)
        ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
        key = (ordered << 32) + (NO_IMAGE - images)
        order = key.topk(self.k, dim=1).indices
        self.values, self.images, self.positions = (t.gather(1, order) for t in (values, images, positions))

    def means(self) -> Tensor:
        """Each channel's mean over the images seen, (C,) float32."""
        return (self.sums / max(self.count, 1)).float()


def channel_maxima(output: Tensor, packed: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """A block's output (B, C, H, W) as per-image channel maxima, their flat grid positions (row-major; the first
    of equal maxima) and channel means: three (B, C) tensors, computed where the output lies.

    The grid is flattened as a view of the output's own layout: (B, C, H*W) when contiguous, (B, H*W, C) when
    channels-last (flattening that one to (B, C, H*W) would copy the whole output). ``packed`` finds the maximum
    and its position in one integer max (:func:`_packed_max`): the same numbers, a pass fewer over the output
    once torch.compile fuses the packing into the reduction (eager, the packed keys would be a tensor of their own).
    """
    batch, channels = output.shape[:2]
    if output.is_contiguous():
        grid, axis = output.reshape(batch, channels, -1), 2
    else:
        grid, axis = output.permute(0, 2, 3, 1).reshape(batch, -1, channels), 1
    means = grid.mean(axis, dtype=torch.float32)
    if packed and grid.shape[axis] < 2**16 and output.dtype in (torch.bfloat16, torch.float32):
        return (*_packed_max(grid, axis), means)
    return grid.amax(axis).float(), grid.argmax(axis), means


def _packed_max(grid: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """Max and first argmax as one max over integer keys: the value's bits made to order as integers (high half),
    the position reversed (low 16 bits), so the largest key is the largest value at its first position."""
    wide, narrow, bits = (
        (torch.int32, torch.int16, 16) if grid.dtype == torch.bfloat16 else (torch.int64, torch.int32, 32)
    )
    raw = grid.view(narrow).to(wide)
    ordered = raw ^ ((raw >> (bits - 1)) & (2 ** (bits - 1) - 1))  # an involution: applied again, it undoes itself
    shape = [1, 1, 1]
    shape[axis] = grid.shape[axis]
    place = torch.arange(grid.shape[axis], device=grid.device, dtype=wide).reshape(shape)
    best = ((ordered << 16) | (0xFFFF - place)).amax(axis)
    high = best >> 16
    value_bits = (high ^ ((high >> (bits - 1)) & (2 ** (bits - 1) - 1))).to(narrow)
    return value_bits.view(grid.dtype).float(), 0xFFFF - (best & 0xFFFF)
