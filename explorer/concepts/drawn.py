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

#: Cells optimised together: 200 at 160 px take 10 GB for the backward through the network; two hundred a batch
#: run 1.7 times as many cells a second as 100 on an H100 (benchmarks/bench_atlas.py).
BATCH = {"cuda": 200, "cpu": 16}
BACKGROUND = (255, 255, 255)


def atlas_settings(
    device: torch.device | str, steps: int | None = None, size: int | None = None, seed: int = 0
) -> Settings:
    """The atlas's feature visualisation: smaller and shorter than a channel's gallery picture, since a cell is
    shown as a tile of 64 to 96 px and an atlas has hundreds: 256 steps at 160 px on a GPU (400 cells in about
    35 s on an H100), 96 steps at 96 px on a CPU (about 3.2 s a cell on 2 cores)."""
    gpu = torch.device(device).type == "cuda"
    return Settings(steps or (256 if gpu else 96), size or (160 if gpu else 96), seed)


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
    settings = settings or atlas_settings(device)
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
