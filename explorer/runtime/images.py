"""Decoding and validating the images users bring: one RGB picture, or one clear error.

Anything a person may upload (a phone photo with EXIF rotation, a PNG with transparency, a CMYK
JPEG, a 16-bit scan, an animated GIF) becomes an 8-bit RGB image plus notes saying what was done.
Anything unusable (empty, truncated, not an image, too large, a format that is not allowed)
raises :class:`ImageError` with a message meant for people. Only an allowlist of formats is ever
decoded, so no file reaches a decoder that runs external programs (Pillow's EPS, for one).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, features

#: The largest upload accepted, in bytes (the app's upload limit says the same).
MAX_BYTES = 25 * 1024 * 1024
#: The most pixels decoded; Pillow's decompression-bomb guard stops far larger ones earlier.
MAX_PIXELS = 50_000_000

_ALWAYS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
ACCEPTED_FORMATS: tuple[str, ...] = _ALWAYS + (("AVIF",) if features.check("avif") else ())


#: The sample photographs (public domain or CC0, see ATTRIBUTION.md there), installed with the package.
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


def sample_paths() -> list[Path]:
    """The sample photographs, by name."""
    return sorted(SAMPLES_DIR.glob("*.jpg"))


def sample_path(name: str) -> Path:
    """One sample by its name (``cat``), or :class:`ImageError` naming the ones there are."""
    for path in sample_paths():
        if path.stem == name:
            return path
    raise ImageError(f"no sample called {name!r}; the samples are {', '.join(p.stem for p in sample_paths())}")


class ImageError(ValueError):
    """An image that cannot be used, with a message for people."""


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, 8 bits per channel
    format: str
    original_size: tuple[int, int]  # width, height as stored
    notes: tuple[str, ...]


def accepted_formats_text() -> str:
    return ", ".join(ACCEPTED_FORMATS)


def load_image(source: bytes | str | Path, name: str = "") -> LoadedImage:
    """Decode ``source`` (bytes or a path) into an RGB image, or raise :class:`ImageError`."""
    if isinstance(source, str | Path):
        path = Path(source)
        name = name or path.name
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ImageError(f"{name} is larger than {MAX_BYTES // 2**20} MB")
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{name} is a folder, not an image") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied") from None
    else:
        data = source
    label = name or "the image"
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{label} is larger than {MAX_BYTES // 2**20} MB")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            _check_size(image, label)
            return _to_rgb(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label} has too many pixels to decode safely (a decompression bomb?)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{label} is not an image in a format that works here ({accepted_formats_text()}); "
            "HEIC photos need converting to JPEG first"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        raise ImageError(f"{label} is damaged or truncated and cannot be decoded ({error})") from None


def _check_size(image: Image.Image, label: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{label} has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{label} is {width}x{height}: more than {MAX_PIXELS // 1_000_000} megapixels")


def _to_rgb(image: Image.Image) -> LoadedImage:
    notes: list[str] = []
    fmt = image.format or "?"
    original_size = image.size
    frames = getattr(image, "n_frames", 1)
    if getattr(image, "is_animated", False) and frames > 1:
        image.seek(0)
        notes.append(f"animated {fmt} with {frames} frames: the first frame is used")
    image.load()  # decode now, so truncation surfaces here
    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        image = ImageOps.exif_transpose(image)
        notes.append("rotated upright as its EXIF orientation says")

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        if mode in ("I", "F") and pixels.min() < 0:
            pixels = pixels - pixels.min()
            top = max(float(pixels.max()), 1.0)
        image = Image.fromarray(np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        notes.append(f"{'16-bit' if mode.startswith('I;16') else mode + '-mode'} image scaled to 8 bits")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
        notes.append("transparent areas filled with white")
    if image.mode == "CMYK":
        notes.append("CMYK colours converted to RGB")
    if image.mode in ("L", "1"):
        notes.append("grayscale: the same values in all three colour channels")
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if max(width, height) > 3 * min(width, height):
        notes.append(f"{width}x{height} is very elongated: the network sees only its central square")
    if min(width, height) < 32:
        notes.append(f"only {width}x{height} pixels: it is enlarged, so expect little detail")
    return LoadedImage(image, fmt, original_size, tuple(notes))
