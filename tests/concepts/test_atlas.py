"""The activation atlas and the class commands, on a real index of real images (the tests' folder: three class
folders with readable images, one with a broken file, and photographs beside them without a class)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from explorer.channels.features.visualise import Settings, visualise
from explorer.channels.index.reader import ChannelIndex
from explorer.channels.index.store import IndexFileError
from explorer.cli import main
from explorer.concepts.atlas import embed, layout
from explorer.concepts.classes import ClassTable
from explorer.concepts.drawn import atlas_picture, cell_pictures
from explorer.concepts.source import network_of
from explorer.nets import make_config
from explorer.nets.loading import load_weights
from tests.index_folder import make_folder

SMALL = (1, 1, 1)  # repeats: the point here is the atlas, not the released network's depth
TINY = Settings(steps=6, size=64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    model, _ = load_weights("random", make_config("released", repeats=SMALL))
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    save_file(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def index(folder, weights_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("index") / "labelled"
    code = main(
        [
            *("index", str(folder), "--out", str(out), "--weights", str(weights_file), "--repeats", "1", "1", "1"),
            *("--classes", "folders", "--batch-size", "8", "--workers", "0", "--precision", "fp32"),
        ]
    )
    assert code == 0
    return ChannelIndex(out)


@pytest.fixture(scope="module")
def block(index):
    return index.manifest["atlas"]["blocks"][0]


@pytest.fixture(scope="module")
def atlas(index, block):
    return layout(index, block, grid=5, seed=3)


def test_cells_partition_the_vectors_and_carry_their_images_and_class(index, block, atlas):
    vectors = len(index.images) * 4
    assert atlas.points.shape == (vectors, 2)
    members = sorted(v for cell in atlas.cells for v in cell.vectors)
    assert members == list(range(vectors))  # every vector in exactly one cell
    assert len({(c.row, c.col) for c in atlas.cells}) == len(atlas.cells)
    held = np.load(index.folder / f"atlas-{block}.npz")
    for cell in atlas.cells:
        assert 0 <= cell.row < 5 and 0 <= cell.col < 5
        assert set(cell.images) == {int(held["images"][v]) for v in cell.vectors}
        np.testing.assert_allclose(
            atlas.directions[atlas.cells.index(cell)], held["vectors"][list(cell.vectors)].astype(np.float32).mean(0)
        )
        labels = [index.manifest["images"][int(held["images"][v])].get("label") for v in cell.vectors]
        counted = {name: labels.count(name) for name in set(labels) if name is not None}
        if counted:
            assert counted[cell.label] == max(counted.values()) == cell.label_count
    # each point lies in its cell
    for cell in atlas.cells:
        x, y = atlas.points[list(cell.vectors)].T
        assert (
            (np.minimum((x * 5).astype(int), 4) == cell.col) & (np.minimum((y * 5).astype(int), 4) == cell.row)
        ).all()


def test_a_fixed_seed_gives_the_same_atlas_twice_and_the_picture_has_the_grids_size(index, block, atlas):
    again = layout(index, block, grid=5, seed=3)
    np.testing.assert_array_equal(again.points, atlas.points)
    assert again.cells == atlas.cells
    model, _ = network_of(index)
    model = model.eval().requires_grad_(False)
    first, second = (cell_pictures(model, found, "cpu", TINY) for found in (atlas, again))
    np.testing.assert_array_equal(first, second)
    assert first.shape == (len(atlas.cells), 64, 64, 3)
    picture = atlas_picture(atlas, first, tile=12)
    assert picture.size == (60, 60)
    pixels = np.asarray(picture)
    for cell, tile in zip(atlas.cells, first, strict=True):  # each tile where its cell is, the rest blank
        placed = pixels[cell.row * 12 : (cell.row + 1) * 12, cell.col * 12 : (cell.col + 1) * 12]
        shrunk = np.asarray(Image.fromarray(tile).resize((12, 12), Image.Resampling.LANCZOS))
        np.testing.assert_array_equal(placed, shrunk)
    empty = {(r, c) for r in range(5) for c in range(5)} - {(c.row, c.col) for c in atlas.cells}
    for r, c in empty:
        assert (pixels[r * 12 : (r + 1) * 12, c * 12 : (c + 1) * 12] == 255).all()


def test_vectors_past_the_landmarks_land_beside_their_own_kind_and_the_seed_repeats_them():
    # three kinds of vector (non-negative, as ReLU outputs are, each strong in its own channels): UMAP lays out
    # 90 of the 300, the rest are placed among them and must fall in their own kind's region of the plane
    rng = np.random.default_rng(0)
    kinds = np.repeat(np.arange(3), 100)
    base = np.zeros((3, 64), np.float32)
    for kind in range(3):
        base[kind, kind * 20 : kind * 20 + 20] = 1.0
    vectors = base[kinds] + rng.uniform(0, 0.3, (300, 64)).astype(np.float32)
    points = embed(vectors, seed=1, landmarks=90)
    np.testing.assert_array_equal(points, embed(vectors, seed=1, landmarks=90))
    chosen = np.sort(np.random.default_rng(1).choice(300, 90, replace=False))
    placed = np.setdiff1d(np.arange(300), chosen)
    centres = np.stack([points[chosen][kinds[chosen] == kind].mean(0) for kind in range(3)])
    nearest = np.linalg.norm(points[placed][:, None] - centres[None], axis=2).argmin(1)
    assert (nearest == kinds[placed]).all()
    assert points.min() == 0.0 and points.max() == 1.0


def test_the_direction_objective_raises_the_projection_onto_its_direction(index, block):
    model, _ = network_of(index)
    model = model.eval().requires_grad_(False)
    held = np.load(index.folder / f"atlas-{block}.npz")
    direction = torch.from_numpy(held["vectors"][:2].astype(np.float32))
    found = visualise(model, "direction", block, [0, 1], Settings(steps=24, size=96), directions=direction)
    start = found.trace[0][1]
    assert all(end > begin for begin, end in zip(start, found.final, strict=True))


def test_the_atlas_command_writes_the_png_and_the_json(index, block, tmp_path, capsys):
    out = tmp_path / "atlas"
    command = ["atlas", str(index.folder), "--block", block, "--grid", "4", "--steps", "4", "--size", "64"]
    assert main([*command, "--tile", "10", "--seed", "1", "--device", "cpu", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["atlas.json", "atlas.png"]
    described = json.loads((out / "atlas.json").read_text())
    assert described["block"] == block and described["grid"] == 4 and described["classes_from"] == "labels"
    assert sorted(v for cell in described["cells"] for v in cell["vectors"]) == list(range(len(index.images) * 4))
    assert sum(cell["count"] for cell in described["cells"]) == described["vectors"]
    assert all(set(cell["images"]) <= set(index.images) for cell in described["cells"])
    assert Image.open(out / "atlas.png").size == (40, 40)
    said = capsys.readouterr()
    assert "of 4x4 cells" in said.err and said.out.startswith(f"{out}: atlas of {block}")


def test_a_changed_weights_file_is_refused_in_one_line(index, weights_file, block, tmp_path, capsys):
    moved = tmp_path / "index"
    shutil.copytree(index.folder, moved)
    before = weights_file.stat()
    try:
        os.utime(weights_file, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # rewritten, as far as anyone knows
        out = tmp_path / "atlas"
        assert main(["atlas", str(moved), "--block", block, "--grid", "2", "--steps", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the weights file") and "has changed since the index was built" in err
        assert err.count("\n") == 1 and not out.exists()
    finally:
        os.utime(weights_file, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_classes_command_reads_the_table_both_ways(index, capsys):
    table = ClassTable(index)
    block = "repeat_1.0"
    assert main(["classes", str(index.folder), "--block", block, "--channel", "7", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["block"] == block and found["channel"] == 7
    assert [row["class"] for row in found["classes"]] == [row.name for row in table.classes_of(block, 7)]
    means = [row["mean"] for row in found["classes"]]
    assert means == sorted(means, reverse=True) and len(means) == 3
    assert [row["count"] for row in found["classes"]] == [table.count_of(row["class"]) for row in found["classes"]]
    assert (
        main(["classes", str(index.folder), "--block", block, "--class", "crops", "--top", "4", "--format", "json"])
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    column = table.means(block)[table.names.index("crops")]
    assert [row["channel"] for row in found["channels"]] == np.argsort(-column, kind="stable")[:4].tolist()
    assert main(["classes", str(index.folder), "--block", block, "--class", "crops", "--by", "predicted"]) == 2
    assert "no class 'crops'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "only").mkdir() or shutil.copy(sample(), root / "only" / "a.jpg"), "need at least two"),
        (lambda root: shutil.copy(sample(), root / "a.jpg"), "0 class folders holding files"),
        (lambda root: (root / "a").mkdir() or (root / "b").mkdir(), "holds no files"),
    ],
)
def test_bad_class_folders_are_one_line_and_nothing_is_written(make, message, weights_file, tmp_path, capsys):
    root = tmp_path / "folder"
    root.mkdir()
    make(root)
    out = tmp_path / "index"
    assert main(["index", str(root), "--out", str(out), "--classes", "folders", "--weights", str(weights_file),
                 "--repeats", "1", "1", "1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # no index, no half-written folder beside it


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("path,label\nastronaut.jpg\n", "line 2: expected 'path,label'"),
        ("astronaut.jpg,person\nnowhere.jpg,cat\n", "line 2: 'nowhere.jpg' is not a file"),
        ("astronaut.jpg,person\nastronaut.jpg,cat\n", "given two labels"),
        ("astronaut.jpg,person\n", "names 1 class"),
    ],
)
def test_unreadable_csv_rows_are_one_line_and_nothing_is_written(rows, message, folder, weights_file, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text(rows)
    out = tmp_path / "index"
    assert main(["index", str(folder), "--out", str(out), "--classes", str(labels), "--weights", str(weights_file),
                 "--repeats", "1", "1", "1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_a_csv_labels_what_it_names_and_an_index_without_labels_says_so(folder, weights_file, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nastronaut.jpg,person\ncrops/astronaut.jpg,person\nflipped/cat.png,animal\n")
    out = tmp_path / "index"
    common = ["--weights", str(weights_file), "--repeats", "1", "1", "1", "--atlas", "none", "--workers", "0"]
    assert main(["index", str(folder), "--out", str(out), "--classes", str(labels), *common]) == 0
    table = ClassTable(ChannelIndex(out))
    assert table.names == ["animal", "person"] and table.counts.tolist() == [1, 2]
    assert ChannelIndex(out).manifest["classes"] == {"from": "labels.csv", "names": ["animal", "person"]}
    plain = tmp_path / "plain"
    assert main(["index", str(folder), "--out", str(plain), *common]) == 0
    capsys.readouterr()
    assert main(["classes", str(plain), "--block", "mixed_6a", "--channel", "0"]) == 2
    err = capsys.readouterr().err
    assert "has no labels: build it with --classes folders" in err and err.count("\n") == 1
    assert main(["classes", str(plain), "--block", "mixed_6a", "--channel", "0", "--by", "predicted"]) == 0
    with pytest.raises(IndexFileError, match=r"no atlas vectors of 'mixed_6a'.*kept none"):
        layout(ChannelIndex(plain), "mixed_6a")
    # the labelled index is not extended by a build without labels: one line, the index left as it was
    assert main(["index", str(folder), "--out", str(out), *common]) == 2
    assert "is an index with classes" in capsys.readouterr().err and ClassTable(ChannelIndex(out)).names


def sample():
    from explorer.runtime.images import sample_paths

    return sample_paths()[0]
