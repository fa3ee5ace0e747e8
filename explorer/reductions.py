"""What people look at in an activation, reduced on the device where it lies: maps and statistics.

Shared by the engine (every block's output, a batch at a time) and the inside of a block.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reduce_block(out: Tensor, shortcut: Tensor | None, residual: Tensor | None, top_k: int) -> list[Tensor]:
    """A block's maps and statistics for each image of the batch, each part shaped (B, n).

    Reads the block output where it lies (bf16, channels-last on the GPU) and accumulates in
    float32: no full-size float32 copy or re-layout of any activation is made.
    """
    f32 = torch.float32
    batch, channels = out.shape[:2]
    k = min(top_k, channels)
    everything = (1, 2, 3)
    top_channels = out.mean((2, 3), dtype=f32).topk(k, dim=1).indices  # (B, k)
    rows = torch.arange(batch, device=out.device)[:, None]
    top_maps = out[rows, top_channels].float()  # (B, k, H, W): only k channels are converted
    variance, mean = torch.var_mean(out, dim=everything)  # one pass; float accumulation for bf16 too
    zeros = (out == 0).sum(everything, dtype=f32) / out[0].numel()
    stats = [mean.float(), variance.float().sqrt(), zeros]
    if residual is not None and shortcut is not None:
        added = torch.linalg.vector_norm(residual, dim=everything, dtype=f32)
        received = torch.linalg.vector_norm(shortcut, dim=everything, dtype=f32).clamp_min(1e-12)
        stats.append(added / received)
    parts = [out.mean(1, dtype=f32), out.amax(1).float(), top_channels.float(), top_maps, torch.stack(stats, 1)]
    return [part.reshape(batch, -1) for part in parts]
