"""One buffer per image: the top-5 and every block's maps and statistics, and the layout that writes and reads it.

The pipelines (:mod:`explorer.runtime.pipeline`) write a row of float32 numbers per image, so that one copy
brings everything back from the device; :class:`Layout` records, block by block, what went in, and reads a
row back into plain values (:class:`~explorer.runtime.results.BlockMaps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from explorer.runtime.results import BlockMaps, BlockStats, Prediction

#: A row starts with the top-5: five probabilities, then their five class indices.
HEAD_SIZE = 10


@dataclass(frozen=True)
class Slot:
    """One block's part of a row: mean map, max map, the top channels' indices, their maps, the statistics."""

    name: str
    shape: tuple[int, int, int]  # the block's output (C, H, W)
    k: int  # how many top channels
    n_stats: int  # 4 for a residual block (its residual ratio), else 3

    @property
    def size(self) -> int:
        _, height, width = self.shape
        return (2 + self.k) * height * width + self.k + self.n_stats


@dataclass
class Layout:
    """The blocks of a packed row in order; the writers :meth:`add` each block as they pack it."""

    slots: list[Slot] = field(default_factory=list)

    def add(self, name: str, output: Tensor, top_k: int, n_stats: int) -> None:
        channels, height, width = output.shape[1:]
        self.slots.append(Slot(name, (channels, height, width), min(top_k, channels), n_stats))

    @property
    def size(self) -> int:
        return HEAD_SIZE + sum(slot.size for slot in self.slots)

    def read(
        self, row: np.ndarray, label: Callable[[int], str]
    ) -> tuple[tuple[Prediction, ...], tuple[BlockMaps, ...]]:
        """A row back as the top-5 (named by ``label``) and every block's maps and statistics."""
        if row.shape != (self.size,):
            raise ValueError(f"a packed row of this layout has {self.size} numbers, not {row.shape}")
        offset = 0

        def take(n: int) -> np.ndarray:
            nonlocal offset
            offset += n
            return row[offset - n : offset]

        probabilities, indices = take(5), take(5).astype(int)
        top5 = tuple(
            Prediction(label(int(i)), float(p), int(i))
            for p, i in zip(probabilities, indices, strict=True)
            if i >= 0  # a head of fewer than five classes
        )
        blocks = []
        for slot in self.slots:
            _, height, width = slot.shape
            mean_map = take(height * width).reshape(height, width)
            max_map = take(height * width).reshape(height, width)
            top_channels = tuple(int(c) for c in take(slot.k))
            top_maps = take(slot.k * height * width).reshape(slot.k, height, width)
            stats = take(slot.n_stats)
            ratio = float(stats[3]) if slot.n_stats > 3 else None
            block_stats = BlockStats(float(stats[0]), float(stats[1]), float(stats[2]), ratio)
            blocks.append(BlockMaps(slot.name, slot.shape, mean_map, max_map, top_channels, top_maps, block_stats))
        return top5, tuple(blocks)
