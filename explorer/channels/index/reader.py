"""An index read back: a channel's examples, each an image of the folder with the box its maximum sees."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.analysis.receptive import ReceptiveField
from explorer.channels.index.store import BlockExamples, IndexFileError, read_block, read_manifest


@dataclass(frozen=True)
class Example:
    """One of a channel's top images: which, its maximum, where in the block's grid, and the input box it sees
    (left, top, right, bottom in the network's input crop)."""

    rank: int
    image: int
    path: str
    value: float
    row: int
    column: int
    box: tuple[int, int, int, int]


class ChannelIndex:
    """An index folder, opened once and shared read-only: the manifest, and each block's arrays memory-mapped
    when first asked for."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        try:
            self.blocks = {b["name"]: b for b in self.manifest["blocks"]}
            self.images = [entry["path"] for entry in self.manifest["images"]]
            self.k = int(self.manifest["k"])
            self.input_size = int(self.manifest.get("input_size", 299))
        except (KeyError, TypeError, ValueError) as error:
            raise IndexFileError(f"{self.folder}/manifest.json lacks what an index has ({error})") from None
        self._arrays: dict[str, BlockExamples] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder the images were read from (their paths are relative to it)."""
        return Path(self.manifest["folder"])

    def matches(self, variant: str, network: str, weights: str) -> str | None:
        """None when the index was made by this network with these weights, else why it does not fit."""
        made = self.manifest
        if made.get("network") != network:
            return f"this index is of {made.get('variant')!r} as built then, not the network in use ({variant})"
        if made.get("weights") != weights:
            return f"this index was made with other weights ({made.get('weights')}), not the ones in use ({weights})"
        return None

    def block(self, name: str) -> BlockExamples:
        if name not in self.blocks:
            raise IndexFileError(f"the index has no block {name!r}; it has {', '.join(self.blocks)}")
        with self._lock:
            if name not in self._arrays:
                self._arrays[name] = read_block(self.folder, name, self.blocks[name]["channels"], self.k)
            return self._arrays[name]

    def field(self, name: str) -> ReceptiveField:
        f = self.blocks[name]["receptive_field"]
        return ReceptiveField(int(f["size"]), int(f["stride"]), float(f["start"]))

    def examples(self, name: str, channel: int) -> list[Example]:
        """A channel's examples, strongest first (fewer than K when the folder held fewer images)."""
        block = self.block(name)
        if not 0 <= channel < block.channels:
            raise IndexFileError(f"{name} has channels 0 to {block.channels - 1}, not {channel}")
        field = self.field(name)
        found = []
        for rank in range(self.k):
            image = int(block.images[channel, rank])
            if image < 0:
                break
            if image >= len(self.images):
                raise IndexFileError(f"{name}.npz names image {image}, the manifest lists {len(self.images)}")
            row, column = (int(v) for v in block.positions[channel, rank])
            value = float(block.values[channel, rank])
            found.append(
                Example(rank, image, self.images[image], value, row, column, field.box(row, column, self.input_size))
            )
        return found

    def order(self, name: str, by: str) -> np.ndarray:
        """The block's channels sorted: by index, by their mean over the dataset or by their strongest maximum."""
        block = self.block(name)
        if by == "index":
            return np.arange(block.channels)
        key = np.asarray(block.mean if by == "mean" else block.values[:, 0])
        return np.argsort(-key, kind="stable")
