"""The activation atlas of a block (Carter et al., Distill 2019), laid out from an index.

The index keeps a few spatial activation vectors of each image at its atlas blocks. Here they are reduced to two
dimensions by UMAP (umap-learn; cosine distance, after PCA to at most 50 dimensions as the article did). Over
``LANDMARKS`` vectors, UMAP lays out that many drawn by the seed and every other vector is placed where UMAP's own
``transform`` starts a new point, at the weighted mean of its nearest laid-out neighbours: a 100,000-vector UMAP
takes a minute on one core (a seed makes UMAP single-threaded), 20,000 take ten seconds. Neighbours are exact,
found by matrix products (:func:`nearest`), for UMAP too: its own search compiles for a minute in each process.
The plane is cut into a grid, and every vector falls in exactly one cell. A cell's mean vector is what its picture
shows (:mod:`explorer.concepts.drawn`); its label is the most frequent class of its vectors' images.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from explorer.channels.index.reader import ChannelIndex
from explorer.channels.index.store import IndexFileError, atlas_file, read_arrays

#: Fewer vectors than this make no map (UMAP's neighbourhoods need some).
MIN_VECTORS = 16
PCA_DIMENSIONS = 50
#: The most vectors UMAP lays out itself; the rest are placed among them.
LANDMARKS = 20_000
NEIGHBOURS = 15
#: UMAP's own choice over 10,000 vectors; it takes 500 below, where the map is no better for an atlas's grid.
EPOCHS = 200


@dataclass(frozen=True)
class Cell:
    """A non-empty cell of the grid: its place, its vectors (indices into the block's atlas vectors), their
    images (indices into the index's images, each once), its most frequent class and how many vectors have it."""

    row: int
    col: int
    vectors: tuple[int, ...]
    images: tuple[int, ...]
    label: str
    label_count: int

    @property
    def count(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class AtlasLayout:
    block: str
    grid: int
    seed: int
    labels_from: str  # "labels" or "predicted"
    points: np.ndarray  # (M, 2) in [0, 1]: x to the right, y downwards
    cells: tuple[Cell, ...]
    directions: np.ndarray  # (cells, C) float32: each cell's mean vector

    def to_json(self, index: ChannelIndex) -> dict:
        return {
            "block": self.block,
            "grid": self.grid,
            "seed": self.seed,
            "classes_from": self.labels_from,
            "vectors": int(self.points.shape[0]),
            "cells": [
                {
                    "row": cell.row,
                    "col": cell.col,
                    "count": cell.count,
                    "class": cell.label,
                    "class_count": cell.label_count,
                    "images": [index.images[i] for i in cell.images],
                    "vectors": list(cell.vectors),
                }
                for cell in self.cells
            ],
        }


def atlas_blocks(index: ChannelIndex) -> list[str]:
    """The blocks the index kept atlas vectors of."""
    return list((index.manifest.get("atlas") or {}).get("blocks", []))


def atlas_vectors(index: ChannelIndex, block: str) -> tuple[np.ndarray, np.ndarray]:
    """A block's atlas vectors (M, C) float16, memory-mapped, and each one's image (M,)."""
    kept = atlas_blocks(index)
    if block not in kept:
        where = f"it kept them of {', '.join(kept)}" if kept else "it kept none (built with --atlas none, or before)"
        raise IndexFileError(
            f"the index has no atlas vectors of {block!r}: {where}; build it with --atlas {block} for this block"
        )
    found = read_arrays(index.folder, atlas_file(block), ("vectors", "images"))
    return found["vectors"], np.asarray(found["images"], dtype=np.int64)


def image_labels(index: ChannelIndex, source: str | None = None) -> tuple[list[str | None], str]:
    """Each image's class: its label (``source`` "labels", or None where the index has labels), else the network's
    first class for it."""
    made = index.manifest
    if source == "labels" or (source is None and made.get("classes")):
        return [entry.get("label") for entry in made["images"]], "labels"
    from explorer.channels.index.store import IMAGES_FILE

    first = np.asarray(read_arrays(index.folder, IMAGES_FILE, ("top_classes",))["top_classes"])[:, 0]
    names = made["head_classes"]
    return [names[int(c)] for c in first], "predicted"


def embed(vectors: np.ndarray, seed: int = 0, landmarks: int = LANDMARKS) -> np.ndarray:
    """UMAP of the vectors to two dimensions, scaled into [0, 1]; the same seed gives the same points."""
    from sklearn.decomposition import PCA

    data = np.asarray(vectors, dtype=np.float32)
    if data.shape[1] > PCA_DIMENSIONS and data.shape[0] > PCA_DIMENSIONS:
        data = PCA(PCA_DIMENSIONS, svd_solver="randomized", random_state=seed).fit_transform(data)
    if len(data) <= landmarks:
        points = _umap(data, seed)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(len(data), landmarks, replace=False))
        rest = np.setdiff1d(np.arange(len(data)), chosen)
        points = np.empty((len(data), 2), dtype=np.float64)
        points[chosen] = _umap(data[chosen], seed)
        points[rest] = placed_among(data[rest], data[chosen], points[chosen])
    low, high = points.min(0), points.max(0)
    return ((points - low) / np.maximum(high - low, 1e-12)).astype(np.float64)


def _umap(data: np.ndarray, seed: int) -> np.ndarray:
    import umap

    k = min(NEIGHBOURS, len(data) - 1)
    # UMAP's own neighbour search (pynndescent) compiles for a minute in every new process; exact neighbours
    # by matrix products take a second for 20,000 vectors and are the same on every machine.
    indices, distances = nearest(data, data, k)
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": the price of repeatability;
        warnings.simplefilter("ignore", UserWarning)  # "transform will be unavailable": we place the rest ourselves
        reducer = umap.UMAP(
            n_neighbors=k,
            min_dist=0.01,
            metric="cosine",
            random_state=seed,
            n_epochs=EPOCHS,
            init="spectral" if len(data) > 64 else "random",
            precomputed_knn=(indices.numpy(), distances.numpy().astype(np.float32)),
        )
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def nearest(data: np.ndarray, laid: np.ndarray, k: int, chunk: int = 4096) -> tuple:
    """For each row of ``data`` its ``k`` nearest rows of ``laid`` by cosine distance, nearest first: (indices
    (N, k) int64, distances (N, k) float64) as CPU tensors. Exact, by matrix products, on the GPU where there is
    one."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    laid_t = torch.nn.functional.normalize(
        torch.from_numpy(np.ascontiguousarray(laid)).to(device, torch.float32), dim=1
    )
    indices, distances = [], []
    for first in range(0, len(data), chunk):
        rows = torch.from_numpy(np.ascontiguousarray(data[first : first + chunk])).to(device, torch.float32)
        similarity, found = (torch.nn.functional.normalize(rows, dim=1) @ laid_t.T).topk(k, dim=1)
        indices.append(found.cpu())
        distances.append((1 - similarity.double()).clamp_min(0).cpu())
    return torch.cat(indices), torch.cat(distances)


def placed_among(data: np.ndarray, laid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each row of ``data`` at the mean of its ``NEIGHBOURS`` nearest ``laid`` rows' points (cosine), weighted
    as UMAP weighs a neighbour: exp(-(d - d_nearest) / sigma), sigma the mean of d - d_nearest."""
    import torch

    nearest_rows, distance = nearest(data, laid, min(NEIGHBOURS, len(laid)))
    above = distance - distance[:, :1]
    weights = torch.exp(-above / above.mean(1, keepdim=True).clamp_min(1e-12))
    placed = (weights[..., None] * torch.from_numpy(points)[nearest_rows]).sum(1) / weights.sum(1, keepdim=True)
    return placed.numpy()


def layout(index: ChannelIndex, block: str, grid: int = 20, seed: int = 0) -> AtlasLayout:
    """The atlas's grid of a block: every vector in one cell, the non-empty cells with their means and labels."""
    if not 1 <= grid <= 100:
        raise ValueError(f"--grid takes a whole number from 1 to 100, not {grid}")
    vectors, images = atlas_vectors(index, block)
    if len(vectors) < MIN_VECTORS:
        raise IndexFileError(f"{len(vectors)} atlas vectors of {block}: an atlas needs at least {MIN_VECTORS}")
    points = embed(vectors, seed)
    y_down = np.stack([points[:, 0], 1 - points[:, 1]], 1)  # rows counted from the top, as pictures are
    cols = np.minimum((y_down[:, 0] * grid).astype(np.int64), grid - 1)
    rows = np.minimum((y_down[:, 1] * grid).astype(np.int64), grid - 1)
    labels, labels_from = image_labels(index)
    cells, directions = [], []
    place = rows * grid + cols
    for flat in np.unique(place):  # row by row, left to right
        members = np.nonzero(place == flat)[0]
        counted = Counter(labels[int(images[m])] for m in members if labels[int(images[m])] is not None)
        label, label_count = min(counted.items(), key=lambda kv: (-kv[1], kv[0])) if counted else ("", 0)
        cells.append(
            Cell(
                int(flat // grid),
                int(flat % grid),
                tuple(int(m) for m in members),
                tuple(sorted({int(images[m]) for m in members})),
                label,
                label_count,
            )
        )
        directions.append(np.asarray(vectors[members], dtype=np.float32).mean(0))
    return AtlasLayout(block, grid, seed, labels_from, y_down, tuple(cells), np.stack(directions))
