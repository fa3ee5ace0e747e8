"""The image sets TCAV is run on, from wherever a user has them, and one call that runs it on an engine.

The CLI reads folders; the app reads the index in use (a class's images, the other images as random
counter-examples) and uploads; both may add the concepts made here (stripes, dots). Images become one normalised
tensor a set, and :func:`run_tcav` runs :func:`explorer.concepts.tcav.tcav` on the engine's private copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.channels.index.reader import ChannelIndex
from explorer.concepts.atlas import image_labels
from explorer.concepts.tcav import ConceptScore, Progress, random_sets, tcav
from explorer.runtime import Engine
from explorer.runtime.images import ImageError, load_image


def read_images(paths: Sequence[Path], limit: int, seed: int) -> tuple[list[Image.Image], int]:
    """Up to ``limit`` of the images (drawn by the seed when there are more) and how many could not be read."""
    paths = list(paths)
    if len(paths) > limit:
        paths = [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), limit, replace=False))]
    images, skipped = [], 0
    for path in paths:
        try:
            images.append(load_image(Path(path).read_bytes()).image)
        except (ImageError, OSError):
            skipped += 1
    return images, skipped


def class_files(index: ChannelIndex, name: str, source: str) -> tuple[list[Path], list[Path]]:
    """The index's images of class ``name`` (by its labels, or by the network's first class for each image) and
    all its other images."""
    classes, _ = image_labels(index, source)
    paths = [index.root / p for p in index.images]
    mine = [p for p, c in zip(paths, classes, strict=True) if c == name]
    return mine, [p for p, c in zip(paths, classes, strict=True) if c != name]


def tensors(engine: Engine, images: Sequence[Image.Image]) -> torch.Tensor:
    """The images as the network sees them: one normalised (N, 3, H, W) tensor on the engine's device."""
    return torch.cat([engine.prepare(image)[1] for image in images]).to(engine.device)


def run_tcav(
    engine: Engine,
    blocks: Sequence[str],
    class_index: int,
    images: Sequence[Image.Image],
    concepts: Mapping[str, Sequence[Image.Image]],
    random_pool: Sequence[Image.Image],
    runs: int,
    per_set: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[ConceptScore]:
    """TCAV of each concept for the class at each block, ``runs`` random sets of ``per_set`` drawn from the pool."""
    known = engine.source.block_names()
    for block in blocks:
        if block not in known:
            raise ValueError(f"unknown block {block!r}; blocks are: {', '.join(known)}")
    if not 0 <= class_index < engine.config.num_classes:
        raise ValueError(f"class {class_index} is not one of the network's {engine.config.num_classes}")
    report = progress or (lambda share, text: None)
    report(0.0, "preparing the images")
    pool = tensors(engine, random_pool)
    randoms = random_sets(pool, runs, per_set, seed)
    sets = {name: tensors(engine, found[:per_set]) for name, found in concepts.items()}
    batch = 32 if engine.device.type == "cuda" else 8  # the gradients' batch holds every block's graph
    with engine.private.shared() as model:  # fp32, ReLUs not in place: the engine's private copy
        return tcav(
            model, blocks, class_index, tensors(engine, images[:per_set]), sets, randoms,
            batch_size=batch, seed=seed, progress=report,
        )  # fmt: skip
