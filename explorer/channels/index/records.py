"""What an index keeps besides each channel's top K: per image its class (when labelled), the network's top classes
and a few spatial activation vectors of the atlas blocks; per class, the sum of every channel's maximum over its
images (so that a class's mean is one division, for any channel of any block).

Both are kept by file index while a build runs (any batch order, any split between processes) and written in the
manifest's image order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


class ClassSums:
    """Per class, the sum over its images of every channel's maximum (float64), and how many images it has.

    Rows are made as classes appear, so the network's predicted classes (a thousand of them, most absent from a
    small folder) cost only the rows of those seen."""

    def __init__(self, channels: int, device: torch.device | str = "cpu") -> None:
        self.row: dict[int, int] = {}
        self.counts: list[int] = []
        self.sums = torch.zeros(0, channels, dtype=torch.float64, device=device)

    def add(self, maxima: Tensor, classes: list[int]) -> None:
        """A batch's (B, C) maxima, its images' classes (negative: none, passed over)."""
        rows = [self._row_of(c) for c in classes]
        keep = [i for i, c in enumerate(classes) if c >= 0]
        if not keep:
            return
        for i in keep:
            self.counts[rows[i]] += 1
        taken = maxima if len(keep) == len(classes) else maxima[torch.tensor(keep, device=maxima.device)]
        where = torch.tensor([rows[i] for i in keep], device=self.sums.device)
        self.sums.index_add_(0, where, taken.to(self.sums.device, torch.float64))

    def _row_of(self, cls: int) -> int:
        if cls < 0:
            return -1
        if cls not in self.row:
            self.row[cls] = len(self.counts)
            self.counts.append(0)
            if len(self.counts) > self.sums.shape[0]:  # room for twice as many rows: few regrowths
                grown = self.sums.new_zeros(max(8, 2 * self.sums.shape[0]), self.sums.shape[1])
                grown[: self.sums.shape[0]] = self.sums
                self.sums = grown
        return self.row[cls]

    def merge(self, classes: np.ndarray, counts: np.ndarray, sums: Tensor) -> None:
        """Another part's rows (:meth:`arrays`' three), added in."""
        for cls, count, row in zip(classes.tolist(), counts.tolist(), sums, strict=True):
            at = self._row_of(int(cls))
            self.counts[at] += int(count)
            self.sums[at] += row.to(self.sums.device, torch.float64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, Tensor]:
        """The classes seen (ascending), their image counts and sums (R, C) float64, in that order."""
        classes = sorted(self.row)
        rows = [self.row[c] for c in classes]
        sums = self.sums[torch.tensor(rows, dtype=torch.long, device=self.sums.device)]
        return np.array(classes, dtype=np.int32), np.array([self.counts[r] for r in rows], dtype=np.int64), sums


@dataclass
class ImageRecords:
    """Per file index: the network's top classes and their probabilities, and per atlas block the vectors
    (P, C) float16 and their places (P,) flat, kept as the batches come."""

    atlas: tuple[str, ...]
    files: list[np.ndarray] = field(default_factory=list)
    top_classes: list[np.ndarray] = field(default_factory=list)
    top_probabilities: list[np.ndarray] = field(default_factory=list)
    vectors: dict[str, list[np.ndarray]] = field(default_factory=dict)
    spots: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, files: np.ndarray, outputs: dict, n: int) -> None:
        """A batch's first ``n`` images (the rest is padding): their file indices and the forward's outputs."""
        self.files.append(files)
        self.top_classes.append(outputs["top_classes"][:n].cpu().numpy().astype(np.int32))
        self.top_probabilities.append(outputs["top_probabilities"][:n].float().cpu().numpy())
        for name, vectors, spots in zip(self.atlas, outputs.get("vectors", ()), outputs.get("spots", ()), strict=True):
            self.vectors.setdefault(name, []).append(vectors[:n].cpu().numpy())
            self.spots.setdefault(name, []).append(spots[:n].cpu().numpy().astype(np.int32))

    def extend(self, other: ImageRecords) -> None:
        for mine, theirs in (
            (self.files, other.files),
            (self.top_classes, other.top_classes),
            (self.top_probabilities, other.top_probabilities),
        ):
            mine.extend(theirs)
        for name in self.atlas:
            self.vectors.setdefault(name, []).extend(other.vectors.get(name, []))
            self.spots.setdefault(name, []).extend(other.spots.get(name, []))

    def ordered(self, keep: list[int]) -> dict[str, np.ndarray | dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The records of the files ``keep`` (ascending file indices: the manifest's order), stacked: "top_classes",
        "top_probabilities" (N, k), and under "atlas" each block's (N, P, C) vectors and (N, P) places."""
        files = np.concatenate(self.files) if self.files else np.zeros(0, dtype=np.int64)
        last = {int(f): i for i, f in enumerate(files.tolist())}  # a file read twice (resumed): its last record
        order = np.array([last[f] for f in keep], dtype=np.int64)

        def stacked(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts)[order]

        return {
            "top_classes": stacked(self.top_classes),
            "top_probabilities": stacked(self.top_probabilities),
            "atlas": {name: (stacked(self.vectors[name]), stacked(self.spots[name])) for name in self.atlas},
        }
