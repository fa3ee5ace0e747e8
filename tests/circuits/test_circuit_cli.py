"""``explorer circuit``: the JSON, the images an index gives, the page --out writes, and one line for bad input."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from PIL import Image

from explorer.channels import build_index
from explorer.channels.index.reader import ChannelIndex
from explorer.circuits import circuit
from explorer.nets import make_config
from explorer.nets.weights import random_weights
from explorer.runtime.images import SAMPLES_DIR, load_image
from explorer.runtime.preprocessing import crop_for_network, preprocessing_for, to_tensor
from tests.cli import explorer

SMALL = ("--repeats", "1", "1", "1", "--weights", "random", "--device", "cpu")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return explorer("circuit", *args)


@pytest.fixture(scope="module")
def small():
    return random_weights(make_config("released", repeats=(1, 1, 1)))


@pytest.fixture(scope="module")
def index(small, tmp_path_factory):
    model, info = small
    out = tmp_path_factory.mktemp("index") / "samples"
    build_index(SAMPLES_DIR, out, model, info, top_k=4, batch_size=4)
    return ChannelIndex(out)


def test_json_from_an_index_measures_the_channels_own_examples(small, index, tmp_path):
    out = tmp_path / "page"
    found = run_cli(
        "--block",
        "repeat_1.0",
        "--channel",
        "17",
        "--index",
        str(index.folder),
        "--top",
        "6",
        "--onward",
        "--format",
        "json",
        "--out",
        str(out),
        *SMALL,
    )
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert {"block", "channel", "response", "images", "inputs", "ablation", "shares", "linear", "onward"} <= set(report)
    examples = index.examples("repeat_1.0", 17)
    assert report["images"] == [e.path for e in examples]
    assert len(report["inputs"]) == 6 and {e["block"] for e in report["inputs"]} == {"mixed_6a"}
    sizes = [abs(e["score"]) for e in report["inputs"]]
    assert sizes == sorted(sizes, reverse=True)
    assert set(report["ablation"]) == {"top", "random", "k", "draws", "response"}
    # The same figures as the library's, on the same images.
    model, _ = small
    pre = preprocessing_for("released")
    images = torch.cat(
        [to_tensor(crop_for_network(load_image(SAMPLES_DIR / e.path).image, pre), pre) for e in examples]
    )
    direct = circuit(model, images, "repeat_1.0", 17)
    assert [(e["channel"], pytest.approx(e["score"], rel=1e-4)) for e in report["inputs"]] == [
        (c.channel, c.score) for c in direct.inputs[:6]
    ]
    assert report["onward"]["next_block"] == "mixed_7a" and len(report["onward"]["classes"]) == 6
    tiles = sorted(out.glob("input-*.png"))
    assert len(tiles) == 6 and (out / "index.html").exists() and (out / "circuit.svg").exists()
    page = (out / "index.html").read_text()
    assert all(tile.name in page for tile in tiles) and "repeat_1.0 channel 17" in page
    assert Image.open(tiles[0]).size[1] >= 96  # the examples' mosaic and the kernel side by side
    assert not list(tmp_path.glob(".circuit-*"))  # the working folder is gone


def test_bad_names_channels_and_indexes_get_one_line(index, tmp_path):
    for args, said in (
        (("--block", "repeat_1.7", "--channel", "0"), "no block 'repeat_1.7' in this network; its blocks: conv2d_1a"),
        (("--block", "repeat_1.0", "--channel", "1088"), "repeat_1.0 has channels 0 to 1087, not 1088"),
        (("--block", "repeat_1.0.branch5", "--channel", "0"), "repeat_1.0 has no 'branch5'; its branches: branch0"),
        (("--block", "repeat_1.0", "--channel", "0", "--index", str(tmp_path)), "manifest.json"),
    ):
        found = run_cli(*args, *SMALL)
        assert found.returncode == 2 and found.stdout == ""
        lines = found.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], found.stderr
    other = run_cli(
        "--block",
        "repeat_1.0",
        "--channel",
        "0",
        "--index",
        str(index.folder),
        "--weights",
        "random",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "2",
        "1",
    )
    assert other.returncode == 2 and "this index is of 'released' as built then" in other.stderr
    assert "Traceback" not in other.stderr
