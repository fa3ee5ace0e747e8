"""The small random changes each optimisation step sees (Lucid's standard transforms): pad, jitter, scale,
rotate, jitter. An image that excites a channel through all of them shows a feature, not an adversarial
pattern that works at one exact position.

The chain is drawn for every step at the start and applied as one resampling (:func:`robust`): the two
jitters are integer crops, the scale and rotation an affine map about the centre, so together they are one
affine map from the output grid into the padded image. Its shapes never change, so that a whole step can be
one CUDA graph (:mod:`explorer.channels.features.visualise`) with the draws as its only changing input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + [0] * 5  # degrees; Lucid weights no rotation more often
PAD, FIRST_JITTER, LAST_JITTER = 12, 8, 4
#: How far (in output pixels, along each axis) the output pixels sampling one image pixel lie from where the
#: inverse map sends that pixel: its square of +-1 pixel, scaled up to max(SCALES) and turned up to max(ANGLES),
#: spans max(SCALES) * (cos + sin) along an axis; the nearest output pixel is within 0.5 of that point.
REACH = math.ceil(max(SCALES) * max(math.cos(math.radians(a)) + abs(math.sin(math.radians(a))) for a in ANGLES) - 0.5)


def output_size(size: int) -> int:
    """The transformed image's side for a ``size``-pixel image: padded, then cropped by both jitters."""
    return size + 2 * PAD - FIRST_JITTER - LAST_JITTER


def draw_transforms(steps: int, size: int, generator: torch.Generator) -> Tensor:
    """Each step's chain as an ``affine_grid`` matrix, (steps, 2, 3) float32, drawn from ``generator`` in Lucid's
    order (first jitter, scale, angle, last jitter), so that a seeded run repeats itself on any device."""

    def pick(count: int) -> int:
        return int(torch.randint(count, (1,), generator=generator))

    padded, rotated, out = size + 2 * PAD, size + 2 * PAD - FIRST_JITTER, output_size(size)
    thetas = torch.empty(steps, 2, 3)
    for step in range(steps):
        first = (pick(FIRST_JITTER + 1), pick(FIRST_JITTER + 1))  # (x, y) crop offsets, pixels
        scale, angle = SCALES[pick(len(SCALES))], math.radians(ANGLES[pick(len(ANGLES))])
        last = (pick(LAST_JITTER + 1), pick(LAST_JITTER + 1))
        turn = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) / scale
        # Output pixel u -> rotated-image pixel u + last -> crop pixel c (about the crop's centre m) -> padded
        # pixel c + first; then pixel coordinates into the padded image's [-1, 1] (align_corners=False).
        centre = (rotated - 1) / 2
        offset = torch.tensor(first, dtype=torch.float32) + centre
        offset += turn @ (torch.full((2,), (out - 1) / 2) + torch.tensor(last, dtype=torch.float32) - centre)
        thetas[step, :, :2] = turn * out / padded
        thetas[step, :, 2] = 2 * offset / padded + 1 / padded - 1
    return thetas


def robust(images: Tensor, theta: Tensor, gather: bool | None = None) -> Tensor:
    """``images`` (B, 3, S, S) through one step's chain (``theta`` (2, 3), from :func:`draw_transforms`):
    (B, 3, S + 12, S + 12) float32, bilinear, the padding grey (0.5) as Lucid's. ``gather`` (the default on a
    GPU) differentiates it by :class:`_Resample`'s gathering backward; on a CPU ``grid_sample``'s own is already
    repeatable, and quicker."""
    images, theta = images.float(), theta.float()
    if gather if gather is not None else images.is_cuda:
        return _Resample.apply(images, theta)
    return _resample(images, theta)


def _resample(images: Tensor, theta: Tensor) -> Tensor:
    padded = F.pad(images, (PAD, PAD, PAD, PAD), value=0.5)
    out, batch = output_size(images.shape[2]), images.shape[0]
    grid = F.affine_grid(theta.expand(batch, 2, 3), [batch, images.shape[1], out, out], align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _pixel_map(theta: Tensor, out: int, padded: int) -> tuple[Tensor, Tensor]:
    """``theta`` (``affine_grid``'s, align_corners=False) in pixels: an output pixel's (x, y) samples the padded
    image at ``matrix @ u + shift``."""
    matrix = theta[:, :2] * (padded / out)
    shift = (theta[:, :2].sum(1) * (1 / out - 1) + theta[:, 2] + 1) * padded / 2 - 0.5
    return matrix, shift


class _Resample(torch.autograd.Function):
    """Pad and resample (``grid_sample``, bilinear), with a backward that gathers instead of adding atomically.

    ``grid_sample``'s own backward on CUDA adds each output pixel's gradient into its four input pixels with
    atomics, in whatever order the threads run, so that the same seed gave visibly different images after a few
    hundred steps. Here each image pixel collects from the output pixels that sampled it (those within
    :data:`REACH` of where the inverse map sends it), a fixed sum in a fixed order. The padding's gradient is
    not needed (it is not optimised), so neither is the border clamping's, which only ever lands on the padding."""

    @staticmethod
    def forward(ctx, images: Tensor, theta: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(theta)
        ctx.size = images.shape[2]
        return _resample(images, theta)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (theta,) = ctx.saved_tensors
        size, out = ctx.size, grad.shape[2]
        grad = grad.float()  # float32 throughout: pixel indices up to out**2 must be exact
        matrix, shift = _pixel_map(theta, out, size + 2 * PAD)
        a, b, c, d = matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]
        det = a * d - b * c
        where = torch.arange(size, device=grad.device, dtype=torch.float32) + PAD  # the image's pixels, padded
        px, py = torch.meshgrid(where, where, indexing="xy")  # (S, S) each
        rx, ry = px - shift[0], py - shift[1]
        nearest = ((d * rx - b * ry) / det).round(), ((a * ry - c * rx) / det).round()  # the inverse map, by hand
        flat = grad.flatten(2)
        total = torch.zeros(grad.shape[0], grad.shape[1], size, size, device=grad.device, dtype=grad.dtype)
        for dy in range(-REACH, REACH + 1):
            for dx in range(-REACH, REACH + 1):  # Python numbers only: no host-to-device copy inside a captured step
                ux, uy = nearest[0] + dx, nearest[1] + dy
                inside = (ux >= 0) & (ux <= out - 1) & (uy >= 0) & (uy <= out - 1)
                sx = matrix[0, 0] * ux + matrix[0, 1] * uy + shift[0]
                sy = matrix[1, 0] * ux + matrix[1, 1] * uy + shift[1]
                weight = (1 - (sx - px).abs()).clamp(min=0) * (1 - (sy - py).abs()).clamp(min=0)
                index = (uy.clamp(0, out - 1) * out + ux.clamp(0, out - 1)).long().flatten()
                total += flat.index_select(2, index).view_as(total) * (weight * inside)
        return total, None
