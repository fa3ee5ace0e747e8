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


def run(command: list[str], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(extra_env or {})}
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


# Compiling made to fail for real: Inductor finds no C++ compiler (read when it is first imported).
NO_COMPILER = {"CXX": "/nonexistent/c++"}

# compiled_or_plain as the index command calls it on a GPU with --compile auto, here on the CPU.
AUTO_ON_THIS_CPU = """
import sys
from pathlib import Path
import torch
from explorer.channels import build_index
from explorer.cli.engines import load_model
from explorer.runtime.builds import Request
from explorer.runtime.upgrade import Memory, compiled_or_plain

folder, out, root = map(Path, sys.argv[1:4])
model, info = load_model("random", "released", repeats=(1, 1, 1))  # as the index command's SMALL settings
tried = []

def build(compiled):
    tried.append(compiled)
    return build_index(folder, out, model, info, top_k=4, batch_size=4, dtype=torch.float32, compile=compiled)

memory = Memory(Request(model.config, "cpu", 4, 4, 299, "fp32"), root, purpose="index")
compiled_or_plain(build, memory, log=lambda line: print("note:", line))
print("tried", tried)
"""


def test_compile_auto_falls_back_to_plain_kernels_says_why_and_remembers(image_folder, one_process, tmp_path):
    script = [sys.executable, "-c", AUTO_ON_THIS_CPU, str(image_folder), str(tmp_path / "index"), str(tmp_path)]
    first = run(script, NO_COMPILER)
    assert first.returncode == 0, first.stderr[-2000:]
    (note,) = [line for line in first.stdout.splitlines() if line.startswith("note:")]
    assert "failed: " in note and "C++ compiler" in note and note.endswith("plain kernels")
    assert "tried [True, False]" in first.stdout
    assert_same_index(tmp_path / "index", one_process)
    shutil.rmtree(tmp_path / "index")
    again = run(script, NO_COMPILER)  # remembered: not tried again
    assert again.returncode == 0 and "tried [False]" in again.stdout, again.stderr[-2000:]
    assert "failed before: " in again.stdout and "to try again" in again.stdout


def test_compile_on_where_compiling_fails_is_one_line_and_leaves_nothing(image_folder, tmp_path):
    out = tmp_path / "index"
    done = run(index_command(image_folder, out, *SMALL, "--workers", "0", "--compile", "on"), NO_COMPILER)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: torch.compile failed: ")
    assert "Traceback" not in done.stderr and not out.exists() and not out.with_name("index.partial").exists()
