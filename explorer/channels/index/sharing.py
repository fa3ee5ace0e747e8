"""Several processes building one index (``torchrun``): who this process is, and the parts merged into one.

Each process keeps the top K of its own images; the parts are gathered with ``all_gather`` (NCCL on GPUs,
gloo on CPUs) and merged by :class:`~explorer.channels.index.top.ChannelTop`'s order, which does not depend on how
the images were shared out, so the index is the one a single process makes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from explorer.channels.index.top import ChannelTop


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @classmethod
    def here(cls) -> Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def start_processes(device: str) -> tuple[Ranks, str]:
    """Join the ``torchrun`` group this process was started in (nothing without one): NCCL with a GPU per
    process, gloo on CPUs. Returns the ranks and the device this process uses."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Ranks.here(), f"cuda:{local}" if cuda else "cpu"


def gathered(
    top: ChannelTop, digests: dict[int, str], skipped: dict[int, str], ranks: Ranks
) -> tuple[ChannelTop, dict[int, str], dict[int, str]]:
    """Every process's part (its top K, and per file index a digest or why it was skipped) merged, the same on
    every process."""
    if ranks.world == 1:
        return top, digests, skipped
    parts = {name: [torch.empty_like(t) for _ in range(ranks.world)] for name, t in _tensors(top).items()}
    for name, tensor in _tensors(top).items():
        dist.all_gather(parts[name], tensor)
    counts = [None] * ranks.world
    dist.all_gather_object(counts, (top.count, digests, skipped))
    merged = ChannelTop.empty(top.keys.shape[0], top.k, top.keys.device)
    for r in range(ranks.world):
        merged.merge(ChannelTop(*(parts[name][r] for name in ("keys", "positions", "sums")), counts[r][0]))
    all_digests: dict[int, str] = {}
    all_skipped: dict[int, str] = {}
    for _, d, s in counts:
        all_digests.update(d)
        all_skipped.update(s)
    return merged, all_digests, all_skipped


def _tensors(top: ChannelTop) -> dict[str, torch.Tensor]:
    return {"keys": top.keys, "positions": top.positions, "sums": top.sums}
