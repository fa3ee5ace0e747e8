"""Bad input to the index: each a one-line message, nothing half-written."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from explorer.channels import FolderError, IndexFileError, build_index
from explorer.channels.index.reader import ChannelIndex
from explorer.cli import main
from explorer.nets import make_config
from explorer.nets.loading import load_weights

SMALL = {"repeats": (1, 1, 1)}


@pytest.fixture(scope="module")
def small():
    return load_weights("random", make_config("released", **SMALL))


@pytest.fixture(scope="module")
def made(image_folder, small, tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "index"
    build_index(image_folder, out, *small, top_k=3, batch_size=8, dtype=torch.float32)
    return out


def one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    message = err.strip().splitlines()[-1]  # after the progress bar's lines, if any
    assert message.startswith("error: ") and "Traceback" not in err
    return message


def test_empty_folders_and_folders_without_images_are_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "empty" / "pipe.jpg")  # not a file to read: reading it would wait for a writer forever
    out = tmp_path / "out"
    args = ["--out", str(out), "--weights", "random", "--repeats", "1", "1", "1", "--workers", "0"]
    assert "holds no files" in one_line_error(["index", str(tmp_path / "empty"), *args], capsys)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("words")
    (tmp_path / "texts" / "b.jpg").write_bytes(b"\xff\xd8 not really")
    assert "holds no image that can be read (2 files skipped)" in one_line_error(
        ["index", str(tmp_path / "texts"), *args], capsys
    )
    assert "no such folder" in one_line_error(["index", str(tmp_path / "nowhere"), *args], capsys)
    assert "--top" in one_line_error(["index", str(tmp_path / "texts"), *args, "--top", "0"], capsys)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "texts"]


def test_an_index_of_other_weights_or_another_network_is_not_extended(image_folder, made, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(made, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other, info = load_weights("random", make_config("released", **SMALL))
    info = type(info)("random (seed 1)", True, identity="random:1")
    with pytest.raises(IndexFileError, match="weights 'random:0', not 'random:1'"):
        build_index(image_folder, out, other, info, top_k=3)
    bigger = load_weights("random", make_config("released", repeats=(2, 1, 1)))
    with pytest.raises(IndexFileError, match="network"):
        build_index(image_folder, out, *bigger, top_k=3)
    with pytest.raises(IndexFileError, match="k 3, not 4"):
        build_index(image_folder, out, other, load_weights("random", make_config("released", **SMALL))[1], top_k=4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    index = ChannelIndex(out)
    assert index.matches("released", repr(make_config("released", **SMALL)), "random:0") is None
    assert "other weights" in index.matches("released", repr(make_config("released", **SMALL)), "hub:tf_in1k")
    assert "not the network in use" in index.matches("released", repr(make_config("released")), "random:0")


def test_damaged_files_and_channels_out_of_range_get_a_message(made, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(made, out)
    index = ChannelIndex(out)
    assert len(index.examples("repeat.0", 319)) == 3
    with pytest.raises(IndexFileError, match="channels 0 to 319, not 320"):
        index.examples("repeat.0", 320)
    with pytest.raises(IndexFileError, match=r"no block 'repeat\.7'"):
        index.examples("repeat.7", 0)
    data = (out / "mixed_6a.npz").read_bytes()
    (out / "mixed_6a.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFileError, match=r"mixed_6a\.npz in .* is damaged or truncated"):
        ChannelIndex(out).examples("mixed_6a", 0)
    (out / "block8.npz").unlink()
    with pytest.raises(IndexFileError, match=r"block8\.npz is missing"):
        ChannelIndex(out).block("block8")
    (out / "manifest.json").write_text("{")
    with pytest.raises(IndexFileError, match="cannot be read"):
        ChannelIndex(out)
    with pytest.raises(IndexFileError, match="not an index"):
        ChannelIndex(tmp_path)


def test_blocks_are_memory_mapped_read_only(made):
    block = ChannelIndex(made).block("repeat_1.0")
    assert isinstance(block.values, np.memmap) and not block.values.flags.writeable
    assert block.values.dtype == np.float32 and block.images.dtype == np.int32 and block.positions.dtype == np.int16
    with np.load(made / "repeat_1.0.npz") as plain:
        assert np.array_equal(plain["values"], block.values) and np.array_equal(plain["positions"], block.positions)


def test_folder_errors_are_value_errors_for_the_cli():
    assert issubclass(FolderError, ValueError) and issubclass(IndexFileError, ValueError)


def test_only_whole_upright_jpegs_go_to_the_gpu_decoder(image_folder):
    from explorer.channels.index.folder import plain_jpeg

    whole = (image_folder / "cat.jpg").read_bytes()
    assert plain_jpeg(whole) and plain_jpeg(whole + b"\0\0")
    # nvJPEG decodes a file cut short without a word; Pillow's path says it is truncated.
    assert not plain_jpeg((image_folder / "broken" / "truncated.jpg").read_bytes())
    assert not plain_jpeg((image_folder / "flipped" / "cat.png").read_bytes())
    assert not plain_jpeg(b"\xff\xd8\xff" + b"\0" * 100 + b"\xff\xd9")
