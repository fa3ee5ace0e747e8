"""The atlas drawn: each non-empty cell's mean vector feature-visualised (the gallery's recipe with the direction
objective, in batches), the tiles set in the grid as one picture."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from explorer.channels.features.visualise import Settings, visualise
from explorer.concepts.atlas import AtlasLayout
from explorer.nets import InceptionNetwork

#: Cells optimised together: a 224-pixel batch's backward through the network fits a GPU's memory many times over.
BATCH = {"cuda": 100, "cpu": 16}
BACKGROUND = (255, 255, 255)


def cell_pictures(
    model: InceptionNetwork,
    atlas: AtlasLayout,
    device: torch.device | str = "cpu",
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Each cell's picture, (cells, size, size, 3) uint8, in the layout's order. A cell starts from its own seed
    (the settings' and its place in the grid), so a picture does not depend on the batch it was made in."""
    device = torch.device(device)
    settings = settings or Settings.for_device(device)
    batch = BATCH.get(device.type, 16)
    count = len(atlas.cells)
    steps_total = count * settings.steps
    pictures = []
    for first in range(0, count, batch):
        cells = atlas.cells[first : first + batch]
        directions = torch.from_numpy(atlas.directions[first : first + batch])
        done = first * settings.steps

        def step(n: int, _steps: int, done: int = done, size: int = len(cells)) -> None:
            if progress is not None:
                progress(done + n * size, steps_total)

        made = visualise(
            model,
            "direction",
            atlas.block,
            [cell.row * atlas.grid + cell.col for cell in cells],
            settings,
            device,
            progress=step,
            directions=directions,
        )
        pictures.append(made.images)
    return np.concatenate(pictures)


def atlas_picture(atlas: AtlasLayout, pictures: np.ndarray, tile: int = 96) -> Image.Image:
    """The grid as one picture, ``grid x tile`` pixels square: each cell's picture in its place, empty cells blank."""
    if tile < 8:
        raise ValueError(f"--tile takes a size from 8 pixels, not {tile}")
    side = atlas.grid * tile
    canvas = Image.new("RGB", (side, side), BACKGROUND)
    for cell, pixels in zip(atlas.cells, pictures, strict=True):
        piece = Image.fromarray(pixels).resize((tile, tile), Image.Resampling.LANCZOS)
        canvas.paste(piece, (cell.col * tile, cell.row * tile))
    return canvas


def png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=False)
    return out.getvalue()
