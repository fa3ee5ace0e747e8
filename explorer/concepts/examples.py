"""Concept folders to try TCAV with, made here with no download: stripes and dots (generated textures of random
colours, sizes and angles) and random counter-examples (crops of the bundled sample photographs, flipped and
recoloured, and smooth noise). Real concepts are a user's own folders; these show how the test behaves."""

from __future__ import annotations

import math
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE = 299
KINDS = ("stripes", "dots", "random")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def stripes(rng: np.random.Generator) -> Image.Image:
    period = rng.uniform(12, 48)
    angle = rng.uniform(0, math.pi)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    wave = (np.cos(angle) * cols + np.sin(angle) * rows) / period
    band = (wave - np.floor(wave)) < rng.uniform(0.3, 0.7)
    one, other = np.array(_colour(rng)), np.array(_colour(rng))
    return Image.fromarray(np.where(band[..., None], one, other).astype(np.uint8))


def dots(rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), _colour(rng))
    draw = ImageDraw.Draw(image)
    radius, colour = rng.uniform(6, 20), _colour(rng)
    step = radius * rng.uniform(2.5, 4)
    shift = rng.uniform(0, step, 2)
    for y in np.arange(-step, SIDE + step, step):
        for x in np.arange(-step, SIDE + step, step):
            cx, cy = x + shift[0], y + shift[1]
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    return image


def random_image(rng: np.random.Generator, photos: list[Image.Image]) -> Image.Image:
    """Half the time a crop of a sample photograph, flipped, with its colours turned; else blurred noise."""
    if photos and rng.random() < 0.5:
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(min(photo.size) // 4, min(photo.size)))
        left = int(rng.integers(0, photo.width - side + 1))
        top = int(rng.integers(0, photo.height - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((SIDE, SIDE))
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop
        order = rng.permutation(3)
        return Image.merge("RGB", [crop.split()[i] for i in order])
    noise = rng.integers(0, 256, (SIDE // 8, SIDE // 8, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((SIDE, SIDE), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))


def sample_photos() -> list[Image.Image]:
    """The bundled sample photographs, the raw material of random counter-examples."""
    samples = resources.files("explorer.samples")
    names = sorted(p.name for p in samples.iterdir() if p.name.endswith(".jpg"))
    return [Image.open(samples / name).convert("RGB") for name in names]


def made(kind: str, count: int, seed: int) -> list[Image.Image]:
    """``count`` images of one kind made here (stripes, dots or random), the same for the same seed."""
    rng = np.random.default_rng(seed)
    photos = sample_photos() if kind == "random" else []
    makers = {"stripes": stripes, "dots": dots, "random": lambda r: random_image(r, photos)}
    return [makers[kind](rng) for _ in range(count)]


def write_examples(out: str | Path, count: int = 50, seed: int = 0) -> dict[str, Path]:
    """``out/stripes``, ``out/dots`` and ``out/random``, ``count`` JPEGs each; folders already there are refused
    (nothing a user made is overwritten)."""
    root = Path(out)
    made = {kind: root / kind for kind in KINDS}
    taken = [str(p) for p in made.values() if p.exists()]
    if taken:
        raise ValueError(f"{taken[0]} exists already: choose another --out")
    samples = resources.files("explorer.samples")
    photos = [Image.open(samples / name).convert("RGB") for name in sorted(p.name for p in samples.iterdir())
              if name.endswith(".jpg")]  # fmt: skip
    rng = np.random.default_rng(seed)
    makers = {"stripes": stripes, "dots": dots, "random": lambda r: random_image(r, photos)}
    root.mkdir(parents=True, exist_ok=True)
    # Written in a hidden folder beside them and moved in whole: a failure leaves no half-made concept behind.
    with tempfile.TemporaryDirectory(prefix=".concept-examples-", dir=root) as work:
        for kind in made:
            folder = Path(work, kind)
            folder.mkdir()
            for number in range(count):
                makers[kind](rng).save(folder / f"{kind}-{number:03d}.jpg", quality=90)
        for kind, folder in made.items():
            Path(work, kind).rename(folder)
    return made
