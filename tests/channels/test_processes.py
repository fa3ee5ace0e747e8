"""The index command as people run it: under torchrun with two gloo processes, stopped with Ctrl-C and resumed,
extended with new images."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.index_folder import assert_same_index

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--weights", "random", "--repeats", "1", "1", "1", "--device", "cpu", "--precision", "fp32", "--top", "4"]


def index_command(folder: Path, out: Path, *extra: str, processes: int = 1) -> list[str]:
    launcher = [sys.executable, "-m", "explorer"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        launcher += ["-m", "explorer"]
    return [*launcher, "index", str(folder), "--out", str(out), *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def one_process(image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "index"
    done = run(index_command(image_folder, out, *SMALL, "--batch-size", "4", "--workers", "0"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "21 images, 14 blocks, top 4 per channel" in done.stdout
    return out


def test_two_gloo_processes_make_the_single_process_index(image_folder, one_process, tmp_path):
    out = tmp_path / "index"
    done = run(index_command(image_folder, out, *SMALL, "--batch-size", "3", "--workers", "1", processes=2))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stdout
    assert_same_index(out, one_process)


def test_new_images_extend_an_index_to_the_one_a_single_run_makes(image_folder, one_process, tmp_path):
    folder, held = tmp_path / "images", tmp_path / "held back"
    shutil.copytree(image_folder, folder)
    held.mkdir()
    for name in ("crops", "generated"):
        shutil.move(folder / name, held / name)
    out = tmp_path / "index"
    first = run(index_command(folder, out, *SMALL, "--workers", "0"))
    assert first.returncode == 0 and "12 images" in first.stdout, first.stderr[-2000:]
    for name in ("crops", "generated"):
        shutil.move(held / name, folder / name)
    second = run(index_command(folder, out, *SMALL, "--workers", "0"))
    assert second.returncode == 0 and "21 images" in second.stdout, second.stderr[-2000:]
    assert_same_index(out, one_process, same_folder=False)


def test_ctrl_c_leaves_no_index_and_the_same_command_goes_on(image_folder, one_process, tmp_path):
    out = tmp_path / "index"
    command = index_command(image_folder, out, *SMALL, "--batch-size", "1", "--workers", "1")
    at = command.index("--repeats")
    command[at + 1 : at + 4] = ["3", "3", "3"]  # a deeper network than SMALL: time to stop it after two images
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = []
    for line in process.stderr:  # the progress bar, a line an image when not on a terminal
        lines.append(line)
        if line.startswith("indexing") and " 2/23 " in line:
            process.send_signal(signal.SIGINT)
            break
    lines += process.stderr.readlines()
    assert process.wait(timeout=300) == 130, "".join(lines)
    assert not out.exists()
    assert any("interrupted:" in line and "the same command goes on" in line for line in lines), "".join(lines)
    kept = out.with_name(f".{out.name}.partial")
    assert 2 <= len(json.loads((kept / "manifest.json").read_text())["images"]) < 21
    again = run(command)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not kept.exists()
    whole = tmp_path / "whole"
    command[command.index("--out") + 1] = str(whole)
    assert run(command).returncode == 0
    assert_same_index(out, whole)
