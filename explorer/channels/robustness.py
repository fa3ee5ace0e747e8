"""The small random changes each optimisation step sees (Lucid's standard transforms): pad, jitter, scale,
rotate, jitter. An image that excites a channel through all of them shows a feature, not an adversarial
pattern that works at one exact position."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + [0] * 5  # degrees; Lucid weights no rotation more often


def _pick(options: list, generator: torch.Generator) -> float:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def jitter(images: Tensor, pixels: int, generator: torch.Generator) -> Tensor:
    """A random crop ``pixels`` smaller on each side."""
    dx, dy = (int(torch.randint(pixels + 1, (1,), generator=generator)) for _ in range(2))
    height, width = images.shape[2:]
    return images[:, :, dy : height - pixels + dy, dx : width - pixels + dx]


def scale_and_rotate(images: Tensor, scale: float, degrees: float) -> Tensor:
    """Scaled about the centre and rotated, the same size (bilinear, borders clamped)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def robust(images: Tensor, generator: torch.Generator) -> Tensor:
    """Lucid's standard transforms, drawn from ``generator`` (so a seeded run repeats itself)."""
    images = F.pad(images, (12, 12, 12, 12), value=0.5)
    images = jitter(images, 8, generator)
    images = scale_and_rotate(images, _pick(SCALES, generator), _pick(ANGLES, generator))
    return jitter(images, 4, generator)
