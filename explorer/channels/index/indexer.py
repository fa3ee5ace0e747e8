"""Building a dataset-examples index of a folder: every image through the network once, each channel's top K kept.

One process, or several under ``torchrun`` (each reads its share of the images; the parts are merged with a
collective, :mod:`explorer.channels.index.sharing`): the same index either way. Nothing is written until the end,
whole (:func:`explorer.channels.index.store.written_whole`); Ctrl-C in a single process keeps what was done beside
the output, and the same command then goes on from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from explorer.channels.index.folder import Decoded, FolderError, decode, list_files
from explorer.channels.index.forward import ChannelMaxima, block_shapes, locate
from explorer.channels.index.labels import read_labels
from explorer.channels.index.nvjpeg import gpu_crops
from explorer.channels.index.records import ClassSums, ImageRecords
from explorer.channels.index.saved import Run, blocks_of, extras_of, manifest_of, resume_from, settings_of
from explorer.channels.index.sharing import Ranks, gathered
from explorer.channels.index.store import write_index
from explorer.channels.index.top import ChannelTop
from explorer.nets import InceptionNetwork
from explorer.nets.weights import WeightsInfo
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.labels import imagenet_labels
from explorer.runtime.preprocessing import Preprocessing, normalise, preprocessing_for

#: Bytes a batch's kept maps may take for locate_later to be chosen by itself: the CLI's batch of 32 in bf16 (1.1 GB)
#: fits, a server's float32 builds for its sessions (2.2 GB each) do not.
MAPS_BUDGET = 3 * 2**29

#: Spatial activation vectors an image gives each atlas block (explorer.concepts.atlas).
PER_IMAGE = 4


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


def default_atlas_blocks(names: Sequence[str]) -> tuple[str, ...]:
    """The blocks an index keeps atlas vectors of unless told: one three fifths of the way in (textures and parts)
    and the last (objects), as the atlas article drew a middle and a late layer."""
    return (names[round(0.6 * (len(names) - 1))], names[-1])


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
    classes: str | None = None,
    atlas: Sequence[str] | None = None,
    per_image: int = PER_IMAGE,
    seed: int = 0,
    progress: Callable[[IndexProgress], None] | None = None,
) -> dict:
    """Index every image below ``folder`` into ``out`` (its manifest is returned); docs/guide/channels.md: the format.

    ``classes``: "folders" (each sub-folder a class) or a CSV file of path,label rows
    (:mod:`explorer.channels.index.labels`); every index records the network's top classes per image and the class
    tables by its first class. ``atlas``: the blocks whose ``per_image`` activation vectors are kept, at places
    drawn from ``seed`` and the file (:func:`default_atlas_blocks` when None; () for none).

    ``locate_later`` finds a maximum's position only for the entries that enter a channel's top K, from the
    batch's block outputs kept on the device (:func:`explorer.channels.index.forward.locate`), instead of for every
    image and channel in the forward: the same index, for the memory of a batch's maps (two batches at a time
    on a GPU; 35 MB an image in bf16, 69 in float32). None: on a CPU when a batch's maps fit in
    :data:`MAPS_BUDGET` (1.4 x quicker with bf16 kernels, 1.1 x with AVX2 float32 ones, 200 images at batch 16);
    off on GPUs, where ``benchmarks/bench_index`` measured both ways at the same speed (docs/guide/channels.md) and
    finding positions in the forward needs no maps kept.
    """
    root, out, device = Path(folder).resolve(), Path(out), torch.device(device)
    if top_k < 1 or batch_size < 1 or workers < 0 or per_image < 1:
        raise ValueError("--top, --batch-size and --atlas-per-image take a whole number from 1, --workers from 0")
    ranks = Ranks.here()
    files = list_files(root)
    labels = read_labels(root, files, classes) if classes is not None else None
    shapes = block_shapes(model)
    atlas = default_atlas_blocks(model.block_names()) if atlas is None else tuple(atlas)
    channels = sum(s.channels for s in shapes)
    preprocessing = preprocessing_for(model.config.variant)
    config = model.config
    identity = {
        "variant": config.variant,
        "network": repr(config),
        "repeats": list(dataclasses.astuple(config.repeats)),  # what --repeats gave: the network can be built again
        "weights": weights.identity,
        "input_size": config.input_size,
    }
    settings = settings_of(labels, atlas, per_image, seed)

    def empty() -> Run:
        fused = compile and device.type == "cuda"
        by_label = ClassSums(channels, device) if labels is not None else None
        top = ChannelTop.empty(channels, top_k, device, fused=fused)
        return Run(top, ImageRecords(atlas), ClassSums(channels, device), by_label, labels)

    run = empty()
    forward = ChannelMaxima(inference_copy(model), atlas=atlas)  # unknown atlas blocks refused before any work
    base = resume_from(out, {**identity, "k": top_k, **settings}, files, shapes, empty())
    todo = [i for i in range(len(files)) if i not in base.digests] if base else list(range(len(files)))
    if base is not None and ranks.rank == 0:  # one process carries the earlier part, or it would count twice
        run.take_in(base)

    if locate_later is None:
        per_image_bytes = sum(shape.channels * shape.grid[0] * shape.grid[1] for shape in shapes) * dtype.itemsize
        locate_later = device.type == "cpu" and batch_size * per_image_bytes <= MAPS_BUDGET
    forward.packed, forward.keep_maps = compile and not locate_later, locate_later
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
    batch_of = partial(_index_batch, run=run, step=step, pad_to=pad, device=device, dtype=dtype, seed=seed)
    count = model.config.num_classes
    names = weights.class_names or (imagenet_labels() if count == 1000 else None)
    head_classes = list(names or (f"class {i}" for i in range(count)))
    try:
        with torch.inference_mode(), _interrupts_between_batches(ranks.world == 1) as interrupted:
            for batch in loader:
                launched = batch_of(batch, preprocessing=preprocessing, root=root, per_image=per_image)
                if launched is not None:
                    queued.append(launched)
                while len(queued) > depth:
                    queued.popleft().merge_into(run)
                done += len(batch) * ranks.world  # every process reads about as many
                if progress is not None and ranks.rank == 0:
                    progress(IndexProgress(min(done, len(files)), len(files), time.perf_counter() - start))
                if interrupted():
                    raise KeyboardInterrupt
            while queued:
                queued.popleft().merge_into(run)
    except KeyboardInterrupt:
        if ranks.world > 1:
            raise
        with torch.inference_mode():  # files of a queued batch are counted as done: what is kept must hold them
            while queued:
                queued.popleft().merge_into(run)
        kept = partial_path(out)
        manifest = {**manifest_of(root, files, run, identity, top_k, dtype, shapes, head_classes), **settings}
        write_index(kept, manifest, blocks_of(run, shapes, files), extras_of(run, shapes))
        raise IndexInterrupted(
            f"interrupted: {len(run.digests)} of {len(files)} files indexed and kept in {kept}; "
            "the same command goes on from there"
        ) from None
    run = gathered(run, ranks, empty)
    manifest = {**manifest_of(root, files, run, identity, top_k, dtype, shapes, head_classes), **settings}
    if ranks.rank == 0:
        if not manifest["images"]:
            raise FolderError(f"{folder} holds no image that can be read ({len(run.skipped)} files skipped)")
        write_index(out, manifest, blocks_of(run, shapes, files), extras_of(run, shapes))
        shutil.rmtree(partial_path(out), ignore_errors=True)
    ranks.barrier()
    return manifest


@dataclass
class LaunchedBatch:
    """A batch's forward, queued: its outputs (cut to its real images when merged), the images' indices on the
    device and on the host, and their labels. On a GPU, what the host needs (each image's top classes, the atlas
    vectors) is copied back as soon as the forward is queued, and ``copied`` marks when it is there: the merge
    waits for this batch, not for the next one queued behind it."""

    outputs: dict
    images: torch.Tensor
    files: np.ndarray
    labels: list[int] | None = None
    copied: torch.cuda.Event | None = None

    @classmethod
    def launched(cls, outputs: dict, images: torch.Tensor, files: np.ndarray, labels: list[int] | None):
        n = len(files)
        host = {
            key: outputs[key][:n].to("cpu", non_blocking=True)
            for key in ("top_classes", "top_probabilities")
            if key in outputs
        }
        for key in ("vectors", "spots"):
            if key in outputs:
                host[key] = [t[:n].to("cpu", non_blocking=True) for t in outputs[key]]
        copied = None
        if images.device.type == "cuda":
            copied = torch.cuda.Event()
            copied.record()
        return cls({**outputs, "host": host}, images, files, labels, copied)

    def merge_into(self, run: Run) -> None:
        outputs, n = self.outputs, self.images.shape[0]
        if "maps" in outputs:
            every_slot = outputs["maxima"].device.type == "cuda"  # explorer.channels.index.forward.locate says why
            where = partial(locate, outputs["maps"], every_slot=every_slot)
            run.top.add_locating(outputs["maxima"][:n], outputs["means"][:n], self.images, where)
        else:
            run.top.add(outputs["maxima"][:n], outputs["positions"][:n], outputs["means"][:n], self.images)
        if self.copied is not None:
            self.copied.synchronize()
        host = outputs["host"]
        if "top_classes" in host:  # a forward without the head (benchmarks.bench_index's "before") has none
            run.records.add(self.files, host, n)
            run.by_prediction.add(outputs["maxima"][:n], host["top_classes"][:, 0].tolist())
        if run.by_label is not None and self.labels is not None:
            run.by_label.add(outputs["maxima"][:n], self.labels)


def picks_for(paths: Sequence[str], per_image: int, seed: int) -> np.ndarray:
    """Where each image's atlas vectors are taken, (B, per_image) in [0, 1): drawn from the seed and the file's
    path alone (SplitMix64 of the pair), so that batches, processes and builds extended by new files take the
    same ones, at no cost next to a batch's forward."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    keys = [int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little") for path in paths]
    counter = np.array(keys, dtype=np.uint64)[:, None] * np.uint64(per_image) + np.arange(per_image, dtype=np.uint64)
    z = counter + np.uint64(seed % 2**32) * golden + golden
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)).astype(np.float64) / 2**24).astype(np.float32)


def _index_batch(
    batch: list[Decoded],
    *,
    run: Run,
    step: Callable,
    pad_to: int,
    device: torch.device,
    dtype: torch.dtype,
    preprocessing: Preprocessing,
    root: Path,
    per_image: int,
    seed: int,
) -> LaunchedBatch | None:
    crops, indices, paths = [], [], []
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
        paths.append(item.path)
    if not crops:
        return None
    picks = picks_for(paths, per_image, seed)
    if pad_to > len(crops):  # a compiled step keeps one batch size: the last batch is padded, the padding dropped
        crops += [crops[-1]] * (pad_to - len(crops))
        picks = np.concatenate([picks, np.repeat(picks[-1:], pad_to - len(indices), 0)])
    x = normalise(torch.stack(crops), preprocessing).to(dtype)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    images = torch.tensor(indices).to(device, non_blocking=True)  # not waiting for the GPU to finish its work
    labels = [run.labels.of_file[i] for i in indices] if run.labels is not None else None
    outputs = step(x, torch.from_numpy(picks).to(device, non_blocking=True))
    return LaunchedBatch.launched(outputs, images, np.array(indices, dtype=np.int64), labels)
