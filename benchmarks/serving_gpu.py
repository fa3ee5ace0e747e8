"""A GPU server's default weights, start to finish: what a class waits for and what the server holds.

    python -m benchmarks.serving_gpu [--compile 1|0] [--cache DIR]

Serves a released-network weights file from a stand-in Hub on 127.0.0.1 (tests/hub_server.py; a
GPU machine here has no network) into an empty Hugging Face cache, and runs the server's default
weights (explorer.runtime.default_weights, EXPLORER_WEIGHTS=auto) as the app does. Reports the seconds
to the first engine (random weights, the pipeline captured with plain kernels, or with compiled ones
when ``--cache`` already holds the build), to the move to the downloaded weights (the second engine built
while the first serves), and to the compiled graph being in place on the engine serving at the end
(built ahead of time by a child process, explorer.runtime.ahead, into ``--cache``: a fresh folder unless
given, so that a second run with the same folder measures a restart). Until then it keeps asking, as a
class would: every image's time (``engine.run`` on the sample photographs, each timed), Grad-CAM's, their
worst and median; then the same once the compiled graph is in place. And memory: the GPU's peak allocated
and reserved, the process's peak resident.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", choices=("1", "0"), default="1")
    parser.add_argument("--cache", type=Path, help="the compiled builds' folder (default: a fresh one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    os.environ.update(
        EXPLORER_COMPILE=args.compile,
        EXPLORER_COMPILE_CACHE=str(args.cache or work / "compiled"),
        EXPLORER_WEIGHTS="auto",
        HF_HUB_CACHE=str(work / "cache"),
        HF_HUB_DOWNLOAD_TIMEOUT="600",  # the held download waits while the first engine is timed
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
        from explorer.runtime.default_weights import DefaultWeights
        from explorer.runtime.images import load_image, sample_paths

        images = [load_image(p).image for p in sample_paths()]
        log: list[tuple[float, str]] = []
        start = time.perf_counter()
        defaults = DefaultWeights(log=lambda line: log.append((time.perf_counter() - start, line))).start()
        key, engine = defaults.current()
        first = time.perf_counter() - start

        def timed(call: Callable[..., object], *args: object) -> float:
            begin = time.perf_counter()
            call(*args)
            return (time.perf_counter() - begin) * 1000

        def in_place() -> bool:
            engine = defaults.current()[1]
            settled = engine.gpu is None or not engine.gpu.compiling(1)  # in place, or given up (its notes say why)
            return not defaults.status().busy and settled

        first_compiled = engine.gpu is not None and 1 in engine.gpu.compiled  # a restart with the build on disk
        plain = per_image_ms(engine, rounds=5)
        breakdown = engine.run(images[0]).timings_ms
        hub.state.hold.set()
        during, cams, timeline = [], [], []
        moved = None
        while not in_place():  # a class keeps asking while the build runs and the weights arrive
            now_key, now = defaults.current()
            if moved is None and now_key != key:
                moved = time.perf_counter() - start
            for image in images:
                during.append(timed(now.run, image))
                timeline.append((time.perf_counter() - start, during[-1]))
            cams.append(timed(Explainer(now).grad_cam, images[0], "repeat_1.0"))
        compiled_in = time.perf_counter() - start
        status = defaults.wait()
        final = defaults.current()[1]
        after = [timed(final.run, image) for _ in range(5) for image in images]
        cams_after = [timed(Explainer(final).grad_cam, images[0], "repeat_1.0") for _ in range(5)]
        compile_notes = final.gpu.notes if final.gpu is not None else ()
    peak_rss = next(
        int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line
    )
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "compile": args.compile,
        "first engine (random weights) s": round(first, 1),
        "first engine's weights": key,
        "compiled from the first image (build found on disk)": first_compiled,
        "compiled graph in place on the serving engine s": round(compiled_in, 1)
        if final.gpu and 1 in final.gpu.compiled
        else None,
        "per image ms, plain kernels (first engine)": round(plain, 2),
        "one run's stages ms": {k: round(v, 2) for k, v in breakdown.items()},
        "images timed until the compiled graph was in place": len(during),
        "per image ms until then, median / worst": [round(statistics.median(during), 2), round(max(during), 2)]
        if during
        else None,
        "images above 10 ms until then (s from start, ms)": [
            (round(t, 1), round(ms, 1)) for t, ms in timeline if ms > 10
        ],
        "grad-cam ms until then, median / worst": [round(statistics.median(cams), 1), round(max(cams), 1)]
        if cams
        else None,
        "moved to the downloaded weights s": round(moved, 1) if moved else None,
        "final weights": status.weights,
        "per image ms, compiled, median / worst": [round(statistics.median(after), 2), round(max(after), 2)],
        "grad-cam ms, compiled, median": round(statistics.median(cams_after), 1),
        "compile notes": list(compile_notes),
        "gpu peak allocated MB": round(torch.cuda.max_memory_allocated() / 1e6) if torch.cuda.is_available() else 0,
        "gpu peak reserved MB": round(torch.cuda.max_memory_reserved() / 1e6) if torch.cuda.is_available() else 0,
        "process peak resident MB": round(peak_rss),
        "console": [f"{t:6.1f} s  {line}" for t, line in log],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
