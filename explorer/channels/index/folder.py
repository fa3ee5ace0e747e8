"""A folder of images as the index reads it: every file below it in one order, each decoded or skipped with why."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.runtime.images import MAX_BYTES, MAX_PIXELS, ImageError, load_image
from explorer.runtime.preprocessing import Preprocessing, crop_for_network


class FolderError(ValueError):
    """A folder that cannot be indexed, with a message for people."""


def list_files(folder: str | Path) -> list[str]:
    """Every file below ``folder``, as sorted POSIX paths relative to it (the order ties are broken by).

    Hidden files and folders (a name starting with '.': ``.git``, ``.DS_Store``) are passed over, and so is
    anything that is not a regular file: reading a named pipe or a device would wait or never end.
    """
    root = Path(folder)
    if not root.exists():
        raise FolderError(f"{folder}: no such folder")
    if not root.is_dir():
        raise FolderError(f"{folder} is a file, not a folder of images")
    found = []
    for where, folders, files in os.walk(root):
        folders[:] = [f for f in folders if not f.startswith(".")]
        regular = [name for name in files if not name.startswith(".") and Path(where, name).is_file()]
        found += [Path(where, name).relative_to(root).as_posix() for name in regular]
    if not found:
        raise FolderError(f"{folder} holds no files")
    return sorted(found)


@dataclass(frozen=True)
class Decoded:
    """One file of the folder: its network-sized crop (H, W, 3) uint8 and digest, or why it was skipped; or, for
    a plain JPEG left to the GPU's decoder, its bytes."""

    index: int
    path: str
    crop: np.ndarray | None
    digest: str = ""
    reason: str = ""
    jpeg: bytes | None = None

    @property
    def usable(self) -> bool:
        return self.crop is not None or self.jpeg is not None


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(root: Path, index: int, path: str, preprocessing: Preprocessing, jpegs_raw: bool = False) -> Decoded:
    """Read and crop one file as the engine would; an unusable file comes back with its reason, never raises.

    ``jpegs_raw``: a baseline RGB or grey JPEG within the size limits comes back as its bytes, for
    ``torchvision.io.decode_jpeg`` on the GPU (its header is read here, not its pixels).
    """
    try:
        data = (root / path).read_bytes()
        if jpegs_raw and plain_jpeg(data):
            return Decoded(index, path, None, digest_of(data), jpeg=data)
        crop = crop_for_network(load_image(data, path).image, preprocessing)
        return Decoded(index, path, np.array(crop, dtype=np.uint8), digest_of(data))
    except ImageError as error:
        return Decoded(index, path, None, reason=str(error))
    except OSError as error:
        return Decoded(index, path, None, reason=f"{path} cannot be read ({error.strerror or error})")


def plain_jpeg(data: bytes) -> bool:
    """A JPEG the GPU's decoder takes as it is: whole, RGB or grey, upright, within explorer.runtime.images' limits."""
    if len(data) > MAX_BYTES or data[:3] != b"\xff\xd8\xff":
        return False
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return False  # no end-of-image marker: cut short. nvJPEG decodes such a file without a word (libjpeg refuses)
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:  # the header only
            width, height = image.size
            upright = image.getexif().get(0x0112, 1) in (1, None)
            return image.mode in ("RGB", "L") and upright and min(width, height) >= 32 and width * height <= MAX_PIXELS
    except (OSError, ValueError, SyntaxError):
        return False  # Pillow's path says what is wrong with it
