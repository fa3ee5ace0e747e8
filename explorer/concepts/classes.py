"""Channels and classes, read from an index: for a channel, the classes whose images raise it most; for a class,
the channels its images raise most. One table read two ways: the mean over a class's images of the channel's
maximum (the value the index ranks examples by), with the count of images.

Classes are the folder's labels when the index was built with ``--classes``; or, for any index, the class the
network itself puts first for each image ("predicted").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.channels.index.reader import ChannelIndex
from explorer.channels.index.store import LABELS_FILE, PREDICTED_FILE, IndexFileError, read_arrays

#: Where a table's classes come from: the folder's labels, or the network's first class for each image.
SOURCES = ("labels", "predicted")


@dataclass(frozen=True)
class ClassOfChannel:
    name: str
    mean: float
    count: int

    def to_json(self) -> dict:
        return {"class": self.name, "mean": self.mean, "count": self.count}


@dataclass(frozen=True)
class ChannelOfClass:
    channel: int
    mean: float

    def to_json(self) -> dict:
        return {"channel": self.channel, "mean": self.mean}


class ClassTable:
    """An index's table of class means, (classes, channels) per block, memory-mapped once and read only."""

    def __init__(self, index: ChannelIndex, source: str = "labels") -> None:
        if source not in SOURCES:
            raise ValueError(f"classes come from {' or '.join(SOURCES)}, not {source!r}")
        made = index.manifest
        if made.get("format", 1) < 2:
            raise IndexFileError(f"{index.folder} was built before indexes recorded classes: build it again")
        if source == "labels":
            if not made.get("classes"):
                raise IndexFileError(
                    f"{index.folder} has no labels: build it with --classes folders (a sub-folder a class) "
                    "or --classes FILE.csv, or use the network's own classes (--by predicted)"
                )
            names = list(made["classes"]["names"])
        else:
            names = list(made["head_classes"])
        file = LABELS_FILE if source == "labels" else PREDICTED_FILE
        found = read_arrays(index.folder, file, SUMS)
        self.index, self.source = index, source
        rows = np.asarray(found["classes"], dtype=np.int64)
        self.names = [names[r] for r in rows]  # only the classes with images
        self.counts = np.asarray(found["counts"], dtype=np.int64)
        self.sums = found["sums"]  # (R, all channels): cut per block by the manifest's order
        self.first: dict[str, int] = {}
        at = 0
        for block in made["blocks"]:
            self.first[block["name"]] = at
            at += int(block["channels"])
        if self.sums.shape != (len(rows), at):
            raise IndexFileError(f"{file} in {index.folder} does not fit its manifest's blocks")

    @property
    def images(self) -> int:
        """How many of the index's images have a class in this table."""
        return int(self.counts.sum())

    def means(self, block: str) -> np.ndarray:
        """(classes, channels of the block) float64: each class's mean of each channel's maximum."""
        channels = self._channels(block)
        first = self.first[block]
        return np.asarray(self.sums[:, first : first + channels], dtype=np.float64) / self.counts[:, None]

    def classes_of(self, block: str, channel: int, top: int = 10) -> list[ClassOfChannel]:
        """The channel's ``top`` classes, highest mean first (ties: the class name's order)."""
        channels = self._channels(block)
        if not 0 <= channel < channels:
            raise IndexFileError(f"{block} has channels 0 to {channels - 1}, not {channel}")
        column = self.means(block)[:, channel]
        order = sorted(range(len(self.names)), key=lambda r: (-column[r], self.names[r]))[: max(top, 0)]
        return [ClassOfChannel(self.names[r], float(column[r]), int(self.counts[r])) for r in order]

    def channels_of(self, block: str, name: str, top: int = 10) -> list[ChannelOfClass]:
        """The class's ``top`` channels in the block, highest mean first (ties: the lower channel first)."""
        if name not in self.names:
            known = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
            raise IndexFileError(f"no class {name[:80]!r} among the index's {len(self.names)} ({known})")
        row = self.means(block)[self.names.index(name)]
        order = np.argsort(-row, kind="stable")[: max(top, 0)]
        return [ChannelOfClass(int(c), float(row[c])) for c in order]

    def count_of(self, name: str) -> int:
        return int(self.counts[self.names.index(name)])

    def _channels(self, block: str) -> int:
        if block not in self.first:
            raise IndexFileError(f"the index has no block {block!r}; it has {', '.join(self.first)}")
        return int(self.index.blocks[block]["channels"])


SUMS = ("classes", "counts", "sums")
