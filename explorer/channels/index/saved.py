"""A build's state and the index it writes: what a run has found so far, the manifest and arrays made from it, and
the run an existing index (or an interrupted build's work) goes on from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from explorer.channels.index.forward import BlockShape
from explorer.channels.index.labels import UNLABELLED, Labels
from explorer.channels.index.records import ClassSums, ImageRecords
from explorer.channels.index.store import (
    FORMAT_VERSION,
    IMAGES_FILE,
    LABELS_FILE,
    PREDICTED_FILE,
    BlockExamples,
    IndexFileError,
    atlas_file,
    read_arrays,
    read_block,
    read_manifest,
)
from explorer.channels.index.top import NO_IMAGE, ChannelTop

#: What a channel's value for one image is, as the manifest says it.
STATISTIC = "the channel's maximum over the block's output grid"
CLASS_ARRAYS = ("classes", "counts", "sums")


@dataclass
class Run:
    """What a build has found so far: the running top-K, per file index a digest or a reason, the images'
    records, and the class tables (by the network's first class; by label when the folder is labelled)."""

    top: ChannelTop
    records: ImageRecords
    by_prediction: ClassSums
    by_label: ClassSums | None = None
    labels: Labels | None = None
    digests: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    def take_in(self, other: Run) -> None:
        """An earlier run's (or another process's) findings, added to this one's."""
        self.top.merge(other.top)
        self.records.extend(other.records)
        self.by_prediction.merge(*other.by_prediction.arrays())
        if self.by_label is not None and other.by_label is not None:
            self.by_label.merge(*other.by_label.arrays())
        self.digests.update(other.digests)
        self.skipped.update(other.skipped)


def settings_of(labels: Labels | None, atlas: tuple[str, ...], per_image: int, seed: int) -> dict:
    """What the manifest records of a build's labels and atlas vectors; an index is extended only with the same."""
    return {
        "classes": labels.to_json() if labels is not None else None,
        "atlas": {"blocks": list(atlas), "per_image": per_image, "seed": seed},
    }


def resume_from(out: Path, expected: dict, files: list[str], shapes: list[BlockShape], fresh: Run) -> Run | None:
    """The run to extend, ``out``'s or an interrupted build's (partial_path), read into an empty ``fresh`` run;
    None for a fresh build. ``expected``: the identity and settings the manifest must record."""
    for where in (out.with_name(f".{out.name}.partial"), out):
        if where.exists():
            _load(where, expected, files, shapes, fresh)
            return fresh
    return None


def _load(where: Path, expected: dict, files: list[str], shapes: list[BlockShape], run: Run) -> None:
    manifest = read_manifest(where)
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFileError(f"{where} was made by an earlier version of the explorer: give another --out")
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise IndexFileError(
                f"{where} is an index with {key} {_short(manifest.get(key))}, not {_short(value)}: "
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
        block = read_block(where, shape.name, shape.channels, manifest["k"])
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
    run.top.merge(top)
    run.digests.update({position[entry["path"]]: entry["digest"] for entry in manifest["images"]})
    _load_records(where, manifest, ids[:-1], shapes, run)


def _load_records(where: Path, manifest: dict, files: np.ndarray, shapes: list[BlockShape], run: Run) -> None:
    found = read_arrays(where, IMAGES_FILE, ("top_classes", "top_probabilities"))
    outputs: dict = {key: torch.from_numpy(np.array(found[key])) for key in found}
    widths = {shape.name: shape.grid[1] for shape in shapes}
    n, per_image = len(files), manifest["atlas"]["per_image"]
    vectors, spots = [], []
    for name in run.records.atlas:
        atlas = read_arrays(where, atlas_file(name), ("vectors", "positions"))
        vectors.append(torch.from_numpy(np.array(atlas["vectors"])).reshape(n, per_image, -1))
        grid = np.asarray(atlas["positions"], dtype=np.int64)
        spots.append(torch.from_numpy(grid[:, 0] * widths[name] + grid[:, 1]).reshape(n, per_image))
    outputs["vectors"], outputs["spots"] = vectors, spots
    run.records.add(files, outputs, n)
    run.by_prediction.merge(*_class_arrays(where, PREDICTED_FILE))
    if run.by_label is not None:
        run.by_label.merge(*_class_arrays(where, LABELS_FILE))


def _class_arrays(where: Path, name: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    found = read_arrays(where, name, CLASS_ARRAYS)
    return np.asarray(found["classes"]), np.asarray(found["counts"]), torch.from_numpy(np.array(found["sums"]))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


def manifest_of(
    root: Path,
    files: list[str],
    run: Run,
    identity: dict,
    top_k: int,
    dtype: torch.dtype,
    shapes: list[BlockShape],
    head_classes: list[str],
) -> dict:
    labels = run.labels
    images = []
    for i in sorted(run.digests):
        entry = {"path": files[i], "digest": run.digests[i]}
        if labels is not None:
            label = labels.of_file[i]
            entry["label"] = labels.names[label] if label != UNLABELLED else None
        images.append(entry)
    return {
        "format": FORMAT_VERSION,
        "folder": str(root),
        "images": images,
        "skipped": [{"path": files[i], "reason": run.skipped[i]} for i in sorted(run.skipped)],
        **identity,
        "k": top_k,
        "statistic": STATISTIC,
        "precision": str(dtype).removeprefix("torch."),
        "code_version": _code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "blocks": [shape.to_json() for shape in shapes],
        "head_classes": head_classes,
    }


def blocks_of(run: Run, shapes: list[BlockShape], files: list[str]) -> list[BlockExamples]:
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


def extras_of(run: Run, shapes: list[BlockShape]) -> dict[str, dict[str, np.ndarray]]:
    """The other arrays of the index (explorer.channels.index.store names the files), in the manifest's order."""
    kept = sorted(run.digests)
    records = run.records.ordered(kept)
    extras = {
        IMAGES_FILE: {"top_classes": records["top_classes"], "top_probabilities": records["top_probabilities"]},
        PREDICTED_FILE: _class_table(run.by_prediction),
    }
    if run.by_label is not None:
        extras[LABELS_FILE] = _class_table(run.by_label)
    widths = {shape.name: shape.grid[1] for shape in shapes}
    for name, (vectors, spots) in records["atlas"].items():
        n, per_image = spots.shape
        flat = spots.reshape(-1).astype(np.int64)
        extras[atlas_file(name)] = {
            "vectors": vectors.reshape(n * per_image, -1),
            "images": np.repeat(np.arange(n, dtype=np.int32), per_image),
            "positions": np.stack([flat // widths[name], flat % widths[name]], -1).astype(np.int16),
        }
    return extras


def _class_table(sums: ClassSums) -> dict[str, np.ndarray]:
    classes, counts, table = sums.arrays()
    return {"classes": classes, "counts": counts, "sums": table.float().cpu().numpy()}  # float32 on disk: half the size


def _code_version() -> str:
    try:
        return metadata.version("inception-resnet-explorer")
    except metadata.PackageNotFoundError:
        return "source"
