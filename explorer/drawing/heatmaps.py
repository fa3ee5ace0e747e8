"""Activation maps as pictures: a colour scale, overlays on the photo, PNG bytes."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image
from plotly.colors import hex_to_rgb, sequential

#: The colour scale of every map, in the app and in the CLI's PNG files.
COLOUR_SCALE = "Viridis"


@cache
def _lookup_table() -> np.ndarray:
    stops = np.array([hex_to_rgb(c) for c in getattr(sequential, COLOUR_SCALE)], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(stops))
    levels = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(levels, positions, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)


def to_unit_range(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the map's own range (a constant map becomes zeros)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def colourise(values: np.ndarray, size: tuple[int, int] | None = None) -> Image.Image:
    """A 2-D map as an RGB picture, optionally resized (nearest neighbour: one cell stays one cell)."""
    rgb = _lookup_table()[(to_unit_range(values) * 255).round().astype(np.uint8)]
    image = Image.fromarray(rgb, "RGB")
    return image.resize(size, Image.Resampling.NEAREST) if size else image


def overlay(photo: np.ndarray, values: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The map, smoothly enlarged to the photo's size, blended over it."""
    height, width = photo.shape[:2]
    smooth = Image.fromarray((to_unit_range(values) * 255).astype(np.uint8), "L").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    coloured = Image.fromarray(_lookup_table()[np.asarray(smooth)], "RGB")
    return Image.blend(Image.fromarray(photo, "RGB"), coloured, alpha)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
