"""Building a dataset-examples index of a folder: every image through the network once, each channel's top K kept.

One process, or several under ``torchrun`` (each reads its share of the images; the parts are merged with a
collective, :mod:`explorer.channels.index.sharing`): the same index either way. Nothing is written until the end,
whole (:func:`explorer.channels.index.store.written_whole`); Ctrl-C in a single process keeps what was done beside
the output, and the same command then goes on from there.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from explorer.channels.index.folder import Decoded, FolderError, decode, list_files
from explorer.channels.index.forward import BlockShape, ChannelMaxima, block_shapes, locate
from explorer.channels.index.nvjpeg import gpu_crops
from explorer.channels.index.sharing import Ranks, gathered
from explorer.channels.index.store import (
    FORMAT_VERSION,
    BlockExamples,
    IndexFileError,
    read_block,
    read_manifest,
    write_index,
)
from explorer.channels.index.top import NO_IMAGE, ChannelTop
from explorer.nets import InceptionNetwork
from explorer.nets.weights import WeightsInfo
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.preprocessing import Preprocessing, normalise, preprocessing_for

#: Bytes a batch's kept maps may take for locate_later to be chosen by itself: the CLI's batch of 32 in bf16 (1.1 GB)
#: fits, a server's float32 builds for its sessions (2.2 GB each) do not.
MAPS_BUDGET = 3 * 2**29

#: What a channel's value for one image is, as the manifest says it.
STATISTIC = "the channel's maximum over the block's output grid"


@dataclass(frozen=True)
class IndexProgress:
    done: int  # files read so far (by every process), skipped ones included
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


class IndexInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build; what was done is kept for the same command to go on from."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Run:
    """What a build has found so far: the running top-K and, per file index, a digest or a reason."""

    top: ChannelTop
    digests: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


class _FolderImages(Dataset):
    def __init__(
        self, root: Path, files: list[str], todo: list[int], preprocessing: Preprocessing, jpegs_raw: bool
    ) -> None:
        self.root, self.files, self.todo, self.preprocessing, self.jpegs_raw = (
            root,
            files,
            todo,
            preprocessing,
            jpegs_raw,
        )

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, item: int) -> Decoded:
        index = self.todo[item]
        return decode(self.root, index, self.files[index], self.preprocessing, self.jpegs_raw)


def _quiet_worker(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


@contextmanager
def _interrupts_between_batches(on: bool) -> Iterator[Callable[[], bool]]:
    """Ctrl-C noted and acted on after the batch in hand, so that what is kept is whole (a top-K half merged
    would not be). Only in a single process's main thread: under torchrun every process must stop together."""
    if not on or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: seen.append(number))
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, previous)


def partial_path(out: Path) -> Path:
    """Where an interrupted build keeps its work: beside ``out``, hidden."""
    return out.with_name(f".{out.name}.partial")


def build_index(
    folder: str | Path,
    out: str | Path,
    model: InceptionNetwork,
    weights: WeightsInfo,
    *,
    top_k: int = 9,
    batch_size: int = 32,
    workers: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
    gpu_decode: bool = True,
    locate_later: bool | None = None,
    progress: Callable[[IndexProgress], None] | None = None,
) -> dict:
    """Index every image below ``folder`` into ``out`` (its manifest is returned). See the README's format.

    ``locate_later`` finds a maximum's position only for the entries that enter a channel's top K, from the
    batch's block outputs kept on the device (:func:`explorer.channels.index.forward.locate`), instead of for every
    image and channel in the forward: the same index, for the memory of a batch's maps (two batches at a time
    on a GPU; 35 MB an image in bf16, 69 in float32). None: on a CPU when a batch's maps fit in
    :data:`MAPS_BUDGET` (1.4 x quicker with bf16 kernels, 1.1 x with AVX2 float32 ones, 200 images at batch 16);
    off on GPUs, where ``benchmarks/bench_index`` measured both ways at the same speed (the README's table) and
    finding positions in the forward needs no maps kept.
    """
    root, out, device = Path(folder).resolve(), Path(out), torch.device(device)
    if top_k < 1 or batch_size < 1 or workers < 0:
        raise ValueError("--top and --batch-size take a whole number from 1, --workers from 0")
    ranks = Ranks.here()
    files = list_files(root)
    shapes = block_shapes(model)
    channels = sum(s.channels for s in shapes)
    preprocessing = preprocessing_for(model.config.variant)
    config = model.config
    identity = {
        "variant": config.variant,
        "network": repr(config),
        "weights": weights.identity,
        "input_size": config.input_size,
    }
    run = _Run(ChannelTop.empty(channels, top_k, device, fused=compile and device.type == "cuda"))
    base = _resume_from(out, identity, top_k, files, shapes)
    todo = [i for i in range(len(files)) if i not in base.digests] if base else list(range(len(files)))
    if base is not None and ranks.rank == 0:  # one process carries the earlier part, or it would count twice
        run.top.merge(base.top)
        run.digests.update(base.digests)

    if locate_later is None:
        per_image = sum(shape.channels * shape.grid[0] * shape.grid[1] for shape in shapes) * dtype.itemsize
        locate_later = device.type == "cpu" and batch_size * per_image <= MAPS_BUDGET
    forward = ChannelMaxima(inference_copy(model), packed=compile and not locate_later, keep_maps=locate_later)
    forward = forward.eval().requires_grad_(False).to(device, dtype)
    if device.type == "cuda":
        forward = forward.to(memory_format=torch.channels_last)
    step = torch.compile(forward, dynamic=False) if compile else forward
    mine = todo[ranks.rank :: ranks.world]
    loader = DataLoader(
        _FolderImages(root, files, mine, preprocessing, jpegs_raw=gpu_decode and device.type == "cuda"),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        worker_init_fn=_quiet_worker if workers else None,
        pin_memory=device.type == "cuda",
    )
    start, done = time.perf_counter(), len(files) - len(todo)
    # On a GPU a batch is merged once the next one's forward is queued: the merge waits for its batch's results,
    # and the GPU has the next forward to run meanwhile.
    queued: deque[LaunchedBatch] = deque()
    depth, pad = (1 if device.type == "cuda" else 0), (batch_size if compile else 0)
    try:
        with torch.inference_mode(), _interrupts_between_batches(ranks.world == 1) as interrupted:
            for batch in loader:
                launched = _index_batch(batch, run, step, pad, locate_later, device, dtype, preprocessing, root)
                if launched is not None:
                    queued.append(launched)
                while len(queued) > depth:
                    queued.popleft().merge_into(run.top)
                done += len(batch) * ranks.world  # every process reads about as many
                if progress is not None and ranks.rank == 0:
                    progress(IndexProgress(min(done, len(files)), len(files), time.perf_counter() - start))
                if interrupted():
                    raise KeyboardInterrupt
            while queued:
                queued.popleft().merge_into(run.top)
    except KeyboardInterrupt:
        if ranks.world > 1:
            raise
        with torch.inference_mode():  # files of a queued batch are counted as done: what is kept must hold them
            while queued:
                queued.popleft().merge_into(run.top)
        kept = partial_path(out)
        write_index(kept, _manifest(root, files, run, identity, top_k, dtype, shapes), _blocks(run, shapes, files))
        raise IndexInterrupted(
            f"interrupted: {len(run.digests)} of {len(files)} files indexed and kept in {kept}; "
            "the same command goes on from there"
        ) from None
    run = _Run(*gathered(run.top, run.digests, run.skipped, ranks))
    manifest = _manifest(root, files, run, identity, top_k, dtype, shapes)
    if ranks.rank == 0:
        if not manifest["images"]:
            raise FolderError(f"{folder} holds no image that can be read ({len(run.skipped)} files skipped)")
        write_index(out, manifest, _blocks(run, shapes, files))
        shutil.rmtree(partial_path(out), ignore_errors=True)
    ranks.barrier()
    return manifest


@dataclass
class LaunchedBatch:
    """A batch's forward, queued: its outputs (cut to its real images when merged) and the images' indices."""

    outputs: tuple[torch.Tensor, ...]
    images: torch.Tensor
    keep_maps: bool

    def merge_into(self, top: ChannelTop) -> None:
        n = self.images.shape[0]
        if self.keep_maps:
            maxima, means, *maps = self.outputs
            every_slot = maxima.device.type == "cuda"  # explorer.channels.index.forward.locate says why
            top.add_locating(maxima[:n], means[:n], self.images, partial(locate, maps, every_slot=every_slot))
        else:
            maxima, positions, means = self.outputs
            top.add(maxima[:n], positions[:n], means[:n], self.images)


def _index_batch(
    batch: list[Decoded],
    run: _Run,
    step: Callable,
    pad_to: int,
    keep_maps: bool,
    device: torch.device,
    dtype: torch.dtype,
    preprocessing: Preprocessing,
    root: Path,
) -> LaunchedBatch | None:
    crops, indices = [], []
    jpegs = [item for item in batch if item.jpeg is not None]
    on_device = dict(zip((item.index for item in jpegs), gpu_crops(jpegs, device, preprocessing), strict=True))
    for item in batch:
        crop = on_device.get(item.index)
        if item.jpeg is not None and crop is None:  # the GPU's decoder refused it: Pillow's path says why
            item = decode(root, item.index, item.path, preprocessing)
        if crop is None and item.crop is not None:
            crop = torch.from_numpy(item.crop).to(device, non_blocking=True)
        if crop is None:
            run.skipped[item.index] = item.reason
            continue
        run.digests[item.index] = item.digest
        crops.append(crop)
        indices.append(item.index)
    if not crops:
        return None
    if pad_to > len(crops):  # a compiled step keeps one batch size: the last batch is padded, the padding dropped
        crops += [crops[-1]] * (pad_to - len(crops))
    x = normalise(torch.stack(crops), preprocessing).to(dtype)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    images = torch.tensor(indices).to(device, non_blocking=True)  # not waiting for the GPU to finish its work
    return LaunchedBatch(tuple(step(x)), images, keep_maps)


def _resume_from(out: Path, identity: dict, top_k: int, files: list[str], shapes: list[BlockShape]) -> _Run | None:
    """The index to extend: ``out`` itself, or an interrupted build's work; None for a fresh build."""
    for where in (partial_path(out), out):
        if where.exists():
            return _loaded(where, identity, top_k, files, shapes)
    return None


def _loaded(where: Path, identity: dict, top_k: int, files: list[str], shapes: list[BlockShape]) -> _Run:
    manifest = read_manifest(where)
    for key, value in (*identity.items(), ("k", top_k)):
        if manifest.get(key) != value:
            raise IndexFileError(
                f"{where} is an index with {key} {manifest.get(key)!r}, not {value!r}: "
                "give another --out for a new index, or the same settings to extend it"
            )
    position = {path: i for i, path in enumerate(files)}
    gone = [entry["path"] for entry in manifest["images"] if entry["path"] not in position]
    if gone:
        raise IndexFileError(
            f"{where} lists {len(gone)} images no longer in the folder ({', '.join(gone[:3])}): "
            "give another --out for a new index"
        )
    ids = np.array([position[entry["path"]] for entry in manifest["images"]] + [NO_IMAGE], dtype=np.int64)
    parts = []
    for shape in shapes:
        block = read_block(where, shape.name, shape.channels, top_k)
        width = shape.grid[1]
        parts.append(
            (
                np.asarray(block.values),
                ids[np.asarray(block.images)],  # -1 (empty) picks the last entry: NO_IMAGE
                np.asarray(block.positions[..., 0], dtype=np.int64) * width + block.positions[..., 1],
                np.asarray(block.mean, dtype=np.float64) * len(manifest["images"]),
            )
        )
    top = ChannelTop.of(*(torch.from_numpy(np.concatenate(column)) for column in zip(*parts, strict=True)))
    top.count = len(manifest["images"])
    digests = {position[entry["path"]]: entry["digest"] for entry in manifest["images"]}
    return _Run(top, digests)


def _manifest(
    root: Path, files: list[str], run: _Run, identity: dict, top_k: int, dtype: torch.dtype, shapes: list[BlockShape]
) -> dict:
    return {
        "format": FORMAT_VERSION,
        "folder": str(root),
        "images": [{"path": files[i], "digest": run.digests[i]} for i in sorted(run.digests)],
        "skipped": [{"path": files[i], "reason": run.skipped[i]} for i in sorted(run.skipped)],
        **identity,
        "k": top_k,
        "statistic": STATISTIC,
        "precision": str(dtype).removeprefix("torch."),
        "code_version": _code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "blocks": [shape.to_json() for shape in shapes],
    }


def _blocks(run: _Run, shapes: list[BlockShape], files: list[str]) -> list[BlockExamples]:
    """The running top-K, cut into blocks, with file indices turned into the manifest's image indices."""
    image_of = np.full(len(files) + 1, -1, dtype=np.int32)  # the last entry: empty slots
    for n, i in enumerate(sorted(run.digests)):
        image_of[i] = n
    top = run.top
    values, images, positions = (t.cpu().numpy() for t in (top.values, top.images, top.positions))
    images = image_of[np.where(images == NO_IMAGE, len(files), images)]
    means = top.means().cpu().numpy()
    blocks, first = [], 0
    for shape in shapes:
        cut = slice(first, first + shape.channels)
        width = shape.grid[1]
        grid = np.stack([positions[cut] // width, positions[cut] % width], -1).astype(np.int16)
        blocks.append(BlockExamples(shape.name, values[cut].astype(np.float32), images[cut], grid, means[cut]))
        first += shape.channels
    return blocks


def _code_version() -> str:
    try:
        return metadata.version("inception-resnet-explorer")
    except metadata.PackageNotFoundError:
        return "source"
