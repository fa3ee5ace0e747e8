"""A GPU server's default weights, start to finish: what a class waits for and what the server holds.

    python -m benchmarks.serving_gpu [--compile 1|0]

Serves a released-network weights file from a stand-in Hub on 127.0.0.1 (tests/hub_server.py; a
GPU machine here has no network) into an empty Hugging Face cache, and runs the server's default
weights (explorer.runtime.default_weights, EXPLORER_WEIGHTS=auto) as the app does. Reports the seconds
to the first engine (random weights, the pipeline captured with plain kernels), to its compiled graph
being swapped in (torch.compile in the background), to the move to the
downloaded weights (the second engine built while the first serves, Grad-CAM and images going
on), the time per image (engine.run on the sample photographs, median) before, during and after
that second build, and memory:
the GPU's peak allocated and reserved, the process's peak resident.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", choices=("1", "0"), default="1")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    os.environ.update(
        EXPLORER_COMPILE=args.compile,
        EXPLORER_WEIGHTS="auto",
        HF_HUB_CACHE=str(work / "cache"),
        HF_HUB_DOWNLOAD_TIMEOUT="600",  # the held download must outlast the first engine's compile
    )
    from safetensors.torch import save_file

    from explorer.nets import build_model
    from tests.hub_server import HubServer

    served = work / "model.safetensors"
    save_file({k: v.contiguous() for k, v in build_model("released", seed=11).state_dict().items()}, str(served))
    with HubServer() as hub:
        hub.add("timm/inception_resnet_v2.tf_in1k", "model.safetensors", served)
        hub.state.hold = threading.Event()  # the download waits until the first engine has been timed
        os.environ["HF_ENDPOINT"] = hub.endpoint  # before huggingface_hub is imported
        import torch

        from benchmarks.serving import per_image_ms
        from explorer.explain import Explainer
        from explorer.runtime import Engine
        from explorer.runtime.default_weights import DefaultWeights
        from explorer.runtime.images import load_image, sample_paths

        images = [load_image(p).image for p in sample_paths()]
        log: list[tuple[float, str]] = []
        start = time.perf_counter()
        defaults = DefaultWeights(log=lambda line: log.append((time.perf_counter() - start, line))).start()
        key, engine = defaults.current()
        first = time.perf_counter() - start

        def per_image(engine: Engine) -> float:
            return per_image_ms(engine, rounds=5)

        plain = per_image(engine)  # plain captured kernels, while torch.compile works in the background
        compiled_in = engine.gpu.wait_compiled() and time.perf_counter() - start
        before = per_image(engine)
        breakdown = engine.run(images[0]).timings_ms
        hub.state.hold.set()
        during = []
        while defaults.status().busy:  # a class keeps asking while the second engine is built
            during.append(per_image(engine))
            Explainer(engine).grad_cam(images[0], "repeat_1.0")  # eager GPU work, with a backward pass
        status = defaults.wait()
        moved = time.perf_counter() - start
        after = per_image(defaults.current()[1])
    peak_rss = next(
        int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line
    )
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "compile": args.compile,
        "first engine (random weights) s": round(first, 1),
        "first engine's weights": key,
        "compiled graph in place s": round(compiled_in, 1) if compiled_in else None,
        "per image ms, plain kernels (before the compiled graph)": round(plain, 2),
        "one run's stages ms": {k: round(v, 2) for k, v in breakdown.items()},
        "moved to the downloaded weights s": round(moved, 1),
        "final weights": status.weights,
        "per image ms, before": round(before, 2),
        "per image ms, during the second build (median of rounds)": round(statistics.median(during), 2)
        if during
        else None,
        "per image ms, after": round(after, 2),
        "gpu peak allocated MB": round(torch.cuda.max_memory_allocated() / 1e6) if torch.cuda.is_available() else 0,
        "gpu peak reserved MB": round(torch.cuda.max_memory_reserved() / 1e6) if torch.cuda.is_available() else 0,
        "process peak resident MB": round(peak_rss),
        "console": [f"{t:6.1f} s  {line}" for t, line in log],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
