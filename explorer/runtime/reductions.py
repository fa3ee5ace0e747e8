"""What people look at in an activation, reduced on the device where it lies: maps and statistics.

Shared by the engine (every block's output, a batch at a time) and the inside of a block.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reduce_block(out: Tensor, shortcut: Tensor | None, residual: Tensor | None, top_k: int) -> list[Tensor]:
    """A block's maps and statistics for each image of the batch, each part shaped (B, n):
    mean map, max map, the k most active channels and their maps, and mean, std, fraction of
    zeros (and, for residual blocks, the norm of the scaled residual over the shortcut's).

    Reads the block output where it lies (bf16 or float32, either layout) and makes no full-size
    copy of it: torch accumulates bf16 reductions in float32 by itself, so only the small results
    are converted (asking for ``dtype=float32`` would convert the whole activation first). Few
    passes: the per-channel means give the overall mean and the top channels, per-channel norms
    the variance, and zeros are counted in place (about a third of a var_mean-based reduction's
    time on a CPU).
    """
    f32 = torch.float32
    if out.device.type == "cpu" and out.dtype != f32:  # the CPU's bf16 reductions convert anyway, each on its own
        out, shortcut, residual = (t.to(f32) if t is not None else None for t in (out, shortcut, residual))
    batch, channels = out.shape[:2]
    k = min(top_k, channels)
    per_channel = out.mean((2, 3)).to(f32)  # (B, C)
    top_channels = per_channel.topk(k, dim=1).indices  # (B, k)
    rows = torch.arange(batch, device=out.device)[:, None]
    top_maps = out[rows, top_channels].to(f32)  # (B, k, H, W): only k channels are converted
    n = out[0].numel()
    mean = per_channel.mean(1)
    norm = _norms(out)
    variance = (norm * norm / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))  # unbiased, as torch.var
    zeros = (n - torch.count_nonzero(out, dim=(1, 2, 3))).to(f32) / n
    stats = [mean, variance.sqrt(), zeros]
    if residual is not None and shortcut is not None:
        stats.append(_norms(residual) / _norms(shortcut).clamp_min(1e-12))
    parts = [out.mean(1).to(f32), out.amax(1).to(f32), top_channels.to(f32), top_maps, torch.stack(stats, 1)]
    return [part.reshape(batch, -1) for part in parts]


def _norms(t: Tensor) -> Tensor:
    """Each image's Euclidean norm, (B,) float32: per channel first in bf16, which keeps it precise and copy-free."""
    if t.dtype == torch.float32:
        return torch.linalg.vector_norm(t, dim=(1, 2, 3))
    return torch.linalg.vector_norm(torch.linalg.vector_norm(t, dim=(2, 3)).to(torch.float32), dim=1)
