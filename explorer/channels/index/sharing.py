"""Several processes building one index (``torchrun``): who this process is, and the parts merged into one.

Each process keeps the top K of its own images; the parts are gathered with ``all_gather`` (NCCL on GPUs,
gloo on CPUs) and merged by :class:`~explorer.channels.index.top.ChannelTop`'s order, which does not depend on how
the images were shared out, so the index is the one a single process makes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from explorer.channels.index.saved import Run
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


def gathered(run: Run, ranks: Ranks, empty: Callable[[], Run]) -> Run:
    """Every process's part merged, the same on every process: the top K (gathered as tensors), and per file
    index a digest or why it was skipped, the images' records and the class tables (gathered as objects; a class
    table holds only the rows of classes its process saw)."""
    if ranks.world == 1:
        return run
    top = run.top
    parts = {name: [torch.empty_like(t) for _ in range(ranks.world)] for name, t in _tensors(top).items()}
    for name, tensor in _tensors(top).items():
        dist.all_gather(parts[name], tensor)
    tables = [run.by_prediction.arrays(), run.by_label.arrays() if run.by_label is not None else None]
    tables = [None if t is None else (t[0], t[1], t[2].cpu()) for t in tables]
    others: list = [None] * ranks.world
    dist.all_gather_object(others, (top.count, run.digests, run.skipped, run.records, tables))
    merged = empty()
    for r, (count, digests, skipped, records, (by_prediction, by_label)) in enumerate(others):
        merged.top.merge(ChannelTop(*(parts[name][r] for name in ("keys", "positions", "sums")), count))
        merged.digests.update(digests)
        merged.skipped.update(skipped)
        merged.records.extend(records)
        merged.by_prediction.merge(*by_prediction)
        if merged.by_label is not None and by_label is not None:
            merged.by_label.merge(*by_label)
    return merged


def _tensors(top: ChannelTop) -> dict[str, torch.Tensor]:
    return {"keys": top.keys, "positions": top.positions, "sums": top.sums}
