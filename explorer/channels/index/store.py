"""The index on disk: ``manifest.json`` and one ``BLOCK.npz`` per block, written whole or not at all.

A format other tools can read (numpy's ``np.load`` and any JSON reader); docs/guide/channels.md describes every field.
Reading memory-maps the arrays, so a server shares one copy of an index between all its sessions.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The version of the format written here; a reader takes it and the earlier ones in READABLE (format 1 has no
#: per-image records, class tables nor atlas vectors) and refuses any other.
FORMAT_VERSION = 2
READABLE = (1, 2)
MANIFEST = "manifest.json"
ARRAYS = ("values", "images", "positions", "mean")
#: Per image, in the manifest's order: the network's top classes ("top_classes", "top_probabilities").
IMAGES_FILE = "images.npz"
#: Per class of the labels ("classes", "counts", "sums"): each channel's maximum summed over the class's images.
LABELS_FILE = "classes.npz"
#: The same per class the network predicts first for an image.
PREDICTED_FILE = "predicted.npz"


def atlas_file(block: str) -> str:
    """A block's atlas vectors: "vectors" (M, C) float16, "images" (M,) int32 and "positions" (M, 2) int16."""
    return f"atlas-{block}.npz"


class IndexFileError(ValueError):
    """An index folder that cannot be used, with a message for people."""


@dataclass(frozen=True)
class BlockExamples:
    """One block's dataset examples: per channel its K images, each image's maximum and where it lies."""

    name: str
    values: np.ndarray  # (C, K) float32, highest first; -inf where fewer than K images were seen
    images: np.ndarray  # (C, K) int32 indices into the manifest's images; -1 where empty
    positions: np.ndarray  # (C, K, 2) int16 (row, column) in the block's grid
    mean: np.ndarray  # (C,) float32 the channel's mean over every image and grid position

    @property
    def channels(self) -> int:
        return self.values.shape[0]


def block_file(name: str) -> str:
    return f"{name}.npz"


@contextmanager
def written_whole(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into, put in ``out``'s place only when the body completes;
    an error or Ctrl-C removes it, and an ``out`` that was there stays until the new one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    work.chmod(0o755)  # readable as any folder made here would be (mkdtemp makes it private)
    try:
        yield work
        old = out.with_name(f".{out.name}.old") if out.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        work.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def write_index(
    out: Path,
    manifest: Mapping[str, Any],
    blocks: list[BlockExamples],
    extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> None:
    """The whole index into ``out`` (:func:`written_whole`): the blocks' examples, and ``extras``, more ``.npz``
    files by name (:data:`IMAGES_FILE`, :data:`LABELS_FILE`, :func:`atlas_file`, ...)."""
    with written_whole(out) as work:
        for block in blocks:
            arrays = {name: getattr(block, name) for name in ARRAYS}
            np.savez(work / block_file(block.name), **arrays)  # stored, not compressed: memory-mappable
        for name, arrays in (extras or {}).items():
            np.savez(work / name, **arrays)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_arrays(folder: str | Path, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of one of an index's ``.npz`` files, memory-mapped; a missing or damaged file is an
    :class:`IndexFileError` in words."""
    path = Path(folder) / name
    try:
        return {key: _mapped(path, key) for key in keys}
    except FileNotFoundError:
        raise IndexFileError(f"{name} is missing from the index {folder}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error) as error:
        raise IndexFileError(f"{name} in {folder} is damaged or truncated ({error})") from None


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise IndexFileError(f"{folder}: no such index folder")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise IndexFileError(f"{folder} is not an index (it has no {MANIFEST})") from None
    except (OSError, ValueError) as error:
        raise IndexFileError(f"{path} cannot be read ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFileError(f"{path}: index format {found!r}, this version reads formats 1 to {FORMAT_VERSION}")
    return manifest


def read_block(folder: str | Path, name: str, channels: int, k: int) -> BlockExamples:
    """One block's arrays, memory-mapped and checked against the manifest's shapes."""
    path = Path(folder) / block_file(name)
    expected = {"values": (channels, k), "images": (channels, k), "positions": (channels, k, 2), "mean": (channels,)}
    arrays = read_arrays(folder, path.name, ARRAYS)
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise IndexFileError(f"{path.name}: {key} is {arrays[key].shape}, the manifest says {shape}")
    return BlockExamples(name, **arrays)


def _mapped(path: Path, key: str) -> np.ndarray:
    """A member of an uncompressed ``.npz`` as a read-only memory map (numpy maps ``.npy`` files, not members)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return np.load(path)[key]  # a compressed file written by another tool: read it whole
        with open(path, "rb") as file:
            file.seek(info.header_offset)
            local = file.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"bad zip entry for {key}")
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            file.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(file)
            formats = np.lib.format
            header = formats.read_array_header_1_0 if version == (1, 0) else formats.read_array_header_2_0
            shape, fortran, dtype = header(file)
            offset = file.tell()
    if offset + int(np.prod(shape)) * dtype.itemsize > os.path.getsize(path):
        raise ValueError(f"{key} is cut short")
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
