"""ROAD's noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", ICML 2022): removed pixels take the values their neighbours imply, so that the shape of what was removed
does not itself tell the network what was there.

Each removed pixel equals the weighted mean of its eight neighbours (1/6 each side, 1/12 each corner, only
those inside the image), removed or not: one sparse linear system per image, solved for every channel at once;
then a little Gaussian noise on the imputed pixels.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

#: (row offset, column offset, weight): the paper's neighbourhood.
NEIGHBOURS = tuple(
    (dr, dc, 1 / 12 if dr and dc else 1 / 6) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)
)


def impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (C, H, W) with the pixels where ``removed`` (H, W) is true filled in from their neighbours, plus
    N(0, noise^2) on those pixels; the kept pixels are unchanged. Some pixel must be kept."""
    channels, height, width = image.shape
    if removed.all():
        raise ValueError("noisy linear imputation needs some pixel kept")
    flat = image.reshape(channels, -1).astype(np.float64)
    unknown = np.flatnonzero(removed.ravel())
    if len(unknown) == 0:
        return image.copy()
    number = np.full(height * width, -1, dtype=np.int64)  # a removed pixel's row in the system
    number[unknown] = np.arange(len(unknown))
    rows, cols = np.divmod(unknown, width)
    diagonal = np.zeros(len(unknown))
    right = np.zeros((len(unknown), channels))
    entries_r, entries_c, entries_v = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        diagonal[inside] += weight
        neighbour = np.where(inside, r * width + c, 0)
        its_number = number[neighbour]
        also_removed = inside & (its_number >= 0)
        entries_r.append(np.flatnonzero(also_removed))
        entries_c.append(its_number[also_removed])
        entries_v.append(np.full(int(also_removed.sum()), -weight))
        kept = inside & (its_number < 0)
        right[kept] += weight * flat[:, neighbour[kept]].T
    size = len(unknown)
    system = csc_matrix(
        (
            np.concatenate([diagonal, *entries_v]),
            (np.concatenate([np.arange(size), *entries_r]), np.concatenate([np.arange(size), *entries_c])),
        ),
        shape=(size, size),
    )
    solved = splu(system).solve(right)  # (unknowns, channels)
    out = flat.copy()
    out[:, unknown] = solved.T + noise * rng.standard_normal((channels, size))
    return out.reshape(channels, height, width).astype(image.dtype)
