"""The activation atlas of a block: how long the whole ``irv2-explorer atlas`` command takes, on this machine.

    python -m benchmarks.bench_atlas [--images 25000] [--per-image 4] [--grid 20] [--block repeat_1.11]
                                     [--threads N] [--index DIR] [--json FILE]

An index of ``--images`` generated JPEGs (a class a thousand, as bench_index makes them) keeping ``--per-image``
atlas vectors of ``--block`` per image is built first (not timed: bench_index times the index); then the atlas
command runs twice as its own process, as a user runs it: the first time with numba's cache empty (UMAP's
kernels compiled), the second with it filled. Each run's layout (PCA + UMAP + the grid) and whole time are
reported, with the settings the command picked on this device. Issue 40's targets: 100,000 vectors, a 20 x 20
grid, <= 90 s on the H200 (``--images 25000``); 2,000 images, an 8 x 8 grid, <= 10 min on 2 CPU cores
(``--images 2000 --grid 8 --threads 2`` on a machine without a GPU).

Random weights (the time does not depend on them); the machine is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine, make_jpegs  # noqa: E402
from explorer.channels import build_index  # noqa: E402
from explorer.nets import make_config  # noqa: E402
from explorer.nets.weights import random_weights  # noqa: E402


def indexed(where: Path, out: Path, images: int, block: str, per_image: int) -> tuple[Path, float]:
    folder = make_jpegs(where / "jpegs", images)
    model, info = random_weights(make_config("released"), 0)
    gpu = torch.cuda.is_available()
    start = time.perf_counter()
    build_index(
        folder,
        out,
        model,
        info,
        batch_size=128 if gpu else 16,
        workers=max(1, (os.cpu_count() or 2) - 1) if gpu else 1,
        device="cuda" if gpu else "cpu",
        dtype=torch.bfloat16 if gpu else torch.float32,
        compile=gpu,
        classes="folders",
        atlas=[block],
        per_image=per_image,
    )
    return out, time.perf_counter() - start


def atlas_run(index: Path, block: str, grid: int, out: Path, env: dict) -> dict:
    command = [sys.executable, "-m", "explorer", "atlas", str(index), "--block", block, "--grid", str(grid)]
    start = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"the atlas command failed: {done.stderr.strip()[-2000:]}")
    laid = re.search(r"laid out (\d+) vectors in (\d+) of .* cells \(([\d.]+) s\)", done.stderr)
    described = json.loads((out / "atlas.json").read_text())
    return {
        "vectors": int(laid.group(1)),
        "cells": int(laid.group(2)),
        "layout, s (from the command's start: imports, index, PCA, UMAP)": float(laid.group(3)),
        "whole command, s": round(seconds, 1),
        "steps": described["steps"],
        "size": described["size"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=25_000)
    parser.add_argument("--per-image", type=int, default=4)
    parser.add_argument("--grid", type=int, default=20)
    parser.add_argument("--block", default="repeat_1.11")
    parser.add_argument("--threads", type=int, help="torch's and numba's threads in the atlas command (a CPU's cores)")
    parser.add_argument("--index", type=Path, help="an index to keep and use again (built there when missing)")
    parser.add_argument("--json")
    args = parser.parse_args()
    report = {"machine": machine(), "images": args.images, "block": args.block, "grid": args.grid}
    print(report["machine"], flush=True)
    with tempfile.TemporaryDirectory() as where:
        index = args.index or Path(where, "index")
        if not (index / "manifest.json").is_file():
            index, seconds = indexed(Path(where), index, args.images, args.block, args.per_image)
            report["index, s (not the atlas's)"] = round(seconds, 1)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(where, "numba"))}
        if args.threads:
            env.update(OMP_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(args.threads))
        report["first run (numba's cache empty)"] = atlas_run(index, args.block, args.grid, Path(where, "a"), env)
        report["second run"] = atlas_run(index, args.block, args.grid, Path(where, "b"), env)
        same = Path(where, "a", "atlas.png").read_bytes() == Path(where, "b", "atlas.png").read_bytes()
        report["the same picture twice"] = same
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
