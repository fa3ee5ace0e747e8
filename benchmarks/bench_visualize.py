"""Feature visualisation: how long one channel and a block's batch of channels take, on this machine.

    python -m benchmarks.bench_visualize [--block repeat_1.10] [--batch 64] [--standard] [--json FILE]

On a GPU, the standard settings (224 px, 512 steps): one channel, then a batch of ``--batch`` channels of the
block, one image each. On a CPU, its defaults (128 px, 128 steps; ``--standard``: the GPU's): one channel, and a
batch of 8. Random
weights (the time does not depend on them); the machine is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine  # noqa: E402
from explorer.channels.features.visualise import Settings, visualise  # noqa: E402
from explorer.nets import make_config  # noqa: E402
from explorer.nets.loading import load_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", default="repeat_1.10")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--standard", action="store_true", help="the GPU's settings (224 px, 512 steps) on a CPU too")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_weights("random", make_config("released"))
    model = model.eval().requires_grad_(False).to(device)
    settings = Settings() if args.standard else Settings.for_device(device)
    batch = args.batch if device.type == "cuda" else 8
    report = {"machine": machine(), "block": args.block, "steps": settings.steps, "size": settings.size}
    print(report["machine"])
    visualise(model, "channel", args.block, [0], Settings(steps=8, size=settings.size), device)  # warm-up
    one = visualise(model, "channel", args.block, [1], settings, device)
    report["one channel, s"] = one.seconds
    many = visualise(model, "channel", args.block, list(range(batch)), settings, device)
    report[f"{batch} channels, s"] = many.seconds
    report["objective rose (one channel)"] = one.trace[-1][1][0] > one.trace[0][1][0]
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
