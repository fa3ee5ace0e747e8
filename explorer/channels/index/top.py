"""Each channel's K strongest images, kept on the device: a batch's channel maxima merged into a running top-K.

The order is the channel's maximum, highest first; equal maxima go by image order (the lower index first), so
that the result does not depend on how the images were cut into batches or shared between processes: merging
any split of the images gives the top-K of all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

#: An empty slot's image: after every real one in the order (images are numbered below it).
NO_IMAGE = 2**31 - 1


#: Locates the maxima of a batch's new top-K entries: given the (C, K) slots they took and their images' places in
#: the batch, the flat grid position of each one's maximum (the first of equal ones); other slots' do not matter.
Locate = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ChannelTop:
    """The K strongest images of C channels so far, and each channel's sum of spatial means.

    keys and positions are (C, K), strongest first: each entry's sort key (:func:`sort_keys`: the channel maximum
    and the image's index in one int64, so that one top-k orders both) and the flat grid position of the maximum;
    empty slots hold -inf and :data:`NO_IMAGE`. values and images are read back from the keys. sums is (C,)
    float64; count the images seen. ``fused``: a batch is merged by one torch.compile'd kernel (:func:`strongest`
    by rounds), for a compiled build on a GPU.
    """

    keys: Tensor
    positions: Tensor
    sums: Tensor
    count: int = 0
    fused: bool = False

    @classmethod
    def empty(cls, channels: int, k: int, device: torch.device | str = "cpu", fused: bool = False) -> ChannelTop:
        values = torch.full((channels, k), -torch.inf, device=device)
        images = torch.full((channels, k), NO_IMAGE, dtype=torch.int64, device=device)
        top = cls.of(values, images, torch.zeros((channels, k), dtype=torch.int64, device=device))
        top.fused = fused
        return top

    @classmethod
    def of(cls, values: Tensor, images: Tensor, positions: Tensor, sums: Tensor | None = None, count: int = 0):
        """From (C, K) values, image indices and positions (an index read back from disk, say)."""
        if sums is None:
            sums = torch.zeros(values.shape[0], dtype=torch.float64, device=values.device)
        return cls(sort_keys(values.float(), images.to(torch.int64)), positions.to(torch.int64), sums, count)

    @property
    def k(self) -> int:
        return self.keys.shape[1]

    @property
    def values(self) -> Tensor:
        """(C, K) float32: each entry's channel maximum."""
        high = (self.keys >> 32).to(torch.int32)
        return (high ^ ((high >> 31) & 0x7FFFFFFF)).view(torch.float32)

    @property
    def images(self) -> Tensor:
        """(C, K) int64: each entry's image index (:data:`NO_IMAGE` for an empty slot)."""
        return NO_IMAGE - (self.keys & 0xFFFFFFFF)

    def add(self, maxima: Tensor, positions: Tensor, means: Tensor, images: Tensor) -> None:
        """Merge one batch: ``maxima``, ``positions`` and ``means`` (B, C) per image, ``images`` (B,) their indices."""
        order = self._take_batch(maxima, means, images)
        self.positions = torch.cat([self.positions, positions.t().to(torch.int64)], 1).gather(1, order)

    def add_locating(self, maxima: Tensor, means: Tensor, images: Tensor, locate: Locate) -> None:
        """Merge one batch whose positions are found afterwards, for the slots its entries took in the top K.

        Finding a maximum's position costs a pass over its map; only a few of a batch's B maps per channel enter
        the top K (fewer and fewer as more images are seen), so ``locate`` reads at most one map a slot
        (:func:`explorer.channels.index.forward.locate`: on a CPU only the new entries').
        """
        k = self.k
        order = self._take_batch(maxima, means, images)
        new = order >= k
        kept = self.positions.gather(1, order.clamp(max=k - 1))  # entries kept from before
        self.positions = torch.where(new, locate(new, (order - k).clamp(min=0)), kept)

    def merge(self, other: ChannelTop) -> None:
        """Take in another part's top-K (another process's images, or an earlier run's)."""
        device = self.keys.device
        order = self._take(other.keys.to(device), other.sums.to(device), other.count)
        self.positions = torch.cat([self.positions, other.positions.to(device)], 1).gather(1, order)

    def _take_batch(self, maxima: Tensor, means: Tensor, images: Tensor) -> Tensor:
        """:meth:`_take` of a batch's (B, C) maxima of ``images`` (B,)."""
        images = images.to(self.keys.device, torch.int64)
        select = _fused_batch_strongest() if self.fused else _batch_strongest
        self.keys, order = select(self.keys, maxima, images, self.k, self.fused)
        self.sums += means.sum(0, dtype=torch.float64)
        self.count += maxima.shape[0]
        return order

    def _take(self, keys: Tensor, sums: Tensor, count: int) -> Tensor:
        """Keep the K strongest of the entries so far and ``keys`` (C, n); returns where each kept one came from
        ((C, K): below K an earlier entry's slot, from K on K + its column in ``keys``)."""
        self.sums += sums
        self.count += count
        self.keys, order = strongest(self.keys, keys, self.k)
        return order

    def means(self) -> Tensor:
        """Each channel's mean over the images seen, (C,) float32."""
        return (self.sums / max(self.count, 1)).float()


def strongest(old: Tensor, new: Tensor, k: int, by_rounds: bool = False) -> tuple[Tensor, Tensor]:
    """The k largest of each row's keys in ``old`` and ``new`` side by side, largest first, and their columns (keys
    are unique in a row but for empty slots, which are alike whichever is taken).

    ``by_rounds`` takes them by k rounds of a row maximum: under torch.compile, one kernel that reads the keys once
    (0.44 ms against torch.topk's 2.0 for 51,440 channels of 9 + 256 keys on an H200), but slow eager."""
    keys = torch.cat([old, new], 1)
    if not by_rounds:
        top = keys.topk(k, dim=1)
        return top.values, top.indices
    columns = torch.arange(keys.shape[1], device=keys.device)
    taken, where = [], []
    for _ in range(k):
        best = keys.amax(1, keepdim=True)
        column = torch.where(keys == best, columns, keys.shape[1]).amin(1, keepdim=True)
        keys = torch.where(columns == column, torch.iinfo(torch.int64).min, keys)
        taken.append(best)
        where.append(column)
    return torch.cat(taken, 1), torch.cat(where, 1)


def _batch_strongest(
    old: Tensor, maxima: Tensor, images: Tensor, k: int, by_rounds: bool = False
) -> tuple[Tensor, Tensor]:
    return strongest(old, sort_keys(maxima.t().float(), images[None, :]), k, by_rounds)


@cache
def _fused_batch_strongest() -> Callable[..., tuple[Tensor, Tensor]]:
    # One compiled function for every build in the process: it holds no state, only kernels.
    return torch.compile(_batch_strongest)


def sort_keys(values: Tensor, images: Tensor) -> Tensor:
    """One int64 per entry, unique within a channel, ordered as the top-K is: the float32 value's bits made to order
    as integers (the high half), then the image's index reversed (the low half), so that equal values go by image
    order. A single top-k on these is much cheaper than sorting twice, and the keys give both back."""
    bits = values.contiguous().view(torch.int32)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    return (ordered << 32) + (NO_IMAGE - images)


def channel_maxima(output: Tensor, packed: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """A block's output (B, C, H, W) as per-image channel maxima, their flat grid positions (row-major; the first
    of equal maxima) and channel means: three (B, C) tensors, computed where the output lies.

    The grid is flattened as a view of the output's own layout (:func:`_grid`). ``packed`` finds the maximum
    and its position in one integer max (:func:`_packed_max`): the same numbers, a pass fewer over the output
    once torch.compile fuses the packing into the reduction (eager, the packed keys would be a tensor of their own).
    """
    grid, axis = _grid(output)
    means = grid.mean(axis, dtype=torch.float32)
    if packed and grid.shape[axis] < 2**16 and output.dtype in (torch.bfloat16, torch.float32):
        return (*_packed_max(grid, axis), means)
    return grid.amax(axis).float(), grid.argmax(axis), means


def channel_maxima_only(output: Tensor) -> tuple[Tensor, Tensor]:
    """A block's output (B, C, H, W) as per-image channel maxima and channel means, two (B, C) tensors: what
    :func:`channel_maxima` gives without the positions, viewed the same way."""
    # Both from one float32 view: torch.compile then reads each output once for the two, even with the results
    # concatenated (from bf16 directly it read twice: on an H200 the network's step went 7,760 -> 8,310 images/s).
    grid, axis = _grid(output)
    wide = grid.float()
    return wide.amax(axis), wide.mean(axis)


def _grid(output: Tensor) -> tuple[Tensor, int]:
    """The output's grid flattened as a view of its own layout, and the grid's axis: (B, C, H*W) when contiguous,
    (B, H*W, C) when channels-last (flattening that one to (B, C, H*W) would copy the whole output)."""
    batch, channels = output.shape[:2]
    if output.is_contiguous():
        return output.reshape(batch, channels, -1), 2
    return output.permute(0, 2, 3, 1).reshape(batch, -1, channels), 1


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
