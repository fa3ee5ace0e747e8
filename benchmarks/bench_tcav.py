"""TCAV of 2 concepts at 3 blocks against 10 random sets, 50 images each (issue 41's target: <= 30 s on the H200).

    python -m benchmarks.bench_tcav [--per-set 50] [--runs 10] [--blocks mixed_5b mixed_6a mixed_7a] [--json FILE]

The concepts (stripes, dots) and the random sets are made by explorer.concepts.examples; the class's images are
the stripes again (the time does not depend on which). Random weights; the whole of ``tcav`` is timed (the sets'
activations, the class's gradients, every CAV and score), from tensors already on the device, after a small
warm-up run. ``--captum`` also times ``captum.concept.TCAV`` given the same CAVs (the oracle the tests use) and
reports the largest difference between the two's scores. The machine is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine  # noqa: E402
from explorer.concepts.examples import dots, random_image, stripes  # noqa: E402
from explorer.concepts.tcav import random_sets, tcav, tcav_captum  # noqa: E402
from explorer.nets import make_config  # noqa: E402
from explorer.nets.weights import random_weights  # noqa: E402
from explorer.runtime.preprocessing import crop_for_network, to_tensor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-set", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--blocks", nargs="+", default=["mixed_5b", "mixed_6a", "mixed_7a"])
    parser.add_argument("--captum", action="store_true", help="also time captum.concept.TCAV with the same CAVs")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = random_weights(make_config("released"), 0)
    model = model.eval().to(device)
    rng = np.random.default_rng(0)

    def batch(make, count: int) -> torch.Tensor:
        return torch.cat([to_tensor(crop_for_network(make(rng))) for _ in range(count)]).to(device)

    concepts = {"stripes": batch(stripes, args.per_set), "dots": batch(dots, args.per_set)}
    images = batch(stripes, args.per_set)
    pool = batch(lambda r: random_image(r, []), 2 * args.per_set)
    randoms = random_sets(pool, args.runs, args.per_set, 0)
    tcav(model, args.blocks[-1:], 0, images[:10], {"s": concepts["stripes"][:10]}, [r[:10] for r in randoms])
    if device.type == "cuda":  # the warm-up above loaded cuDNN's kernels
        torch.cuda.synchronize()
    start = time.perf_counter()
    found = tcav(model, args.blocks, 0, images, concepts, randoms, batch_size=32 if device.type == "cuda" else 8)
    seconds = time.perf_counter() - start
    result = {
        "machine": machine(),
        "concepts x blocks x random sets x images": [2, len(args.blocks), args.runs, args.per_set],
        "tcav, s": round(seconds, 2),
        "results": [f.to_json() for f in found],
    }
    if args.captum:
        start = time.perf_counter()
        theirs = tcav_captum(model, args.blocks, 0, images, concepts, randoms)
        result["captum.concept.TCAV with the same CAVs, s"] = round(time.perf_counter() - start, 2)
        result["largest score difference from Captum's"] = max(
            abs(a - b) for m, c in zip(found, theirs, strict=True) for a, b in zip(m.scores, c.scores, strict=True)
        )
    print(json.dumps({k: v for k, v in result.items() if k != "results"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
