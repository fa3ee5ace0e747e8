"""A server's compile as a process of its own (tests/runtime/test_upgrade.py starts several at once): the small
network's pipeline upgraded on the CPU through explorer.runtime.upgrade, as a GPU server's runner upgrades its
graph, then its rows on the sample photographs set against the eager pipeline's. Prints one line of JSON.

    python -m tests.compile_server ROOT SIZE
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch


def main(root: Path, size: int) -> None:
    from torch._dynamo.utils import counters

    from explorer.runtime.builds import Request
    from explorer.runtime.handover import compiled_rows
    from explorer.runtime.images import load_image, sample_paths
    from explorer.runtime.pipeline import pipeline
    from explorer.runtime.preprocessing import crop_for_network, to_tensor
    from explorer.runtime.upgrade import upgrade
    from tests.ahead_build import network

    model = network(seed=7)  # not the builds' own weights (seed 0): what was compiled must read the server's
    request = Request(model.config, "cpu", 1, 8, size, "fp32")
    log: list[str] = []
    done = upgrade(model, request, partial(compiled_rows, model, request), root=root, log=log.append)
    differences, same_classes = [], True
    if done.made is not None:
        for path in sample_paths():
            crop = crop_for_network(load_image(path).image).resize((size, size))
            x = to_tensor(crop).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                eager = pipeline(model, x, 8)[0]
            got = done.made(x)
            differences.append(float((got - eager).abs().max() / eager.abs().max()))
            same_classes &= torch.equal(got[0, 5:10], eager[0, 5:10])
    report = {
        "way": done.way,
        "built": done.built,
        "failures": list(done.failures),
        "notes": list(done.notes),
        "log": log,
        "cache hits": counters["inductor"]["fxgraph_cache_hit"],
        "cache misses": counters["inductor"]["fxgraph_cache_miss"],
        "largest relative difference": max(differences, default=None),
        "same top-5 classes": same_classes,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
