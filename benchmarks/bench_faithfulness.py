"""Deletion and insertion of one map at 50 steps (102 images through the network), against timm in the same run.

    python -m benchmarks.bench_faithfulness [--steps 50] [--repeats 10] [--threads N] [--json FILE]

ours   ``explorer.explain.score_maps`` (the inference copy: batch norms folded, bf16 channels-last
       under autocast on a GPU, the engine's CPU precision on a CPU): the masks built on the device, both curves'
       images in one batch, forwards of 128 images (16 on a CPU).
peer   timm's inception_resnet_v2, eager, the same 102 images already built, in one batch (bf16 autocast and
       channels-last on a GPU, float32 on a CPU): the forwards alone, the floor a plain loop would reach.

Issue 41's targets: <= 0.05 s on the H200, <= 15 s on 2 CPU cores. Random weights (the time does not depend on
them); the median of ``--repeats`` after two warm-up runs; the machine is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine  # noqa: E402
from explorer.explain import MetricSettings, score_maps  # noqa: E402
from explorer.explain.faithfulness import baseline_image, curve_batch  # noqa: E402
from explorer.nets import make_config  # noqa: E402
from explorer.nets.weights import random_weights  # noqa: E402
from explorer.runtime import Engine  # noqa: E402
from explorer.runtime.images import load_image  # noqa: E402
from explorer.runtime.scoring import probabilities  # noqa: E402


def timed(work, repeats: int, synchronise: bool) -> float:
    for _ in range(2):
        work()
    seconds = []
    for _ in range(repeats):
        if synchronise:
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if synchronise:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch's threads (a CPU's cores)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    model, info = random_weights(make_config("released"), 0)
    engine = Engine(model, info, device="cuda" if gpu else "cpu", compile=False)
    _, x = engine.prepare(load_image(ROOT / "explorer" / "samples" / "cat.jpg").image)
    x = x.to(engine.device)
    heatmap = np.random.default_rng(0).random((299, 299), dtype=np.float32)
    settings = MetricSettings(steps=args.steps, baseline="blur")
    pre = engine.preprocessing

    def ours() -> None:
        scored = partial(probabilities, engine)
        score_maps(scored, x, {"map": heatmap}, 281, ("deletion", "insertion"), settings, pre.mean, pre.std)

    import timm

    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval().to(engine.device)
    baseline = baseline_image(x, settings, pre.mean, pre.std)
    batch = torch.cat([curve_batch(x, baseline, heatmap, args.steps, d) for d in (True, False)])
    if gpu:
        peer = peer.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)

    def theirs() -> None:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=gpu):
            peer(batch).float().softmax(1)[:, 281].cpu()

    def forwards() -> None:
        probabilities(engine, batch)

    with torch.inference_mode(), torch.autocast("cuda", engine.gpu_dtype, enabled=gpu):
        eager = engine.model(batch.to(torch.float32 if gpu else engine.cpu_dtype)).float().softmax(1).cpu()
    found = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "images": 2 * (args.steps + 1),
        "precision": engine.precision,
        "ours, s": timed(ours, args.repeats, gpu),
        "ours, forwards alone (explorer.runtime.scoring.probabilities), s": timed(forwards, args.repeats, gpu),
        "ours against an eager forward of the same copy, largest probability difference": float(
            (probabilities(engine, batch) - eager).abs().max()
        ),
        "peer (timm eager, forwards alone), s": timed(theirs, args.repeats, gpu),
    }
    found["ours / peer"] = found["ours, s"] / found["peer (timm eager, forwards alone), s"]
    print(json.dumps(found, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
