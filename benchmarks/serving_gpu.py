"""A GPU server with default settings, start to finish and again after a restart: what a class waits for.

    python -m benchmarks.serving_gpu [--network released|inception-v4] [--cache DIR] [--phase both|cold|restart]

``both`` (the default) runs a cold start into an empty compile cache (``--cache``: a fresh folder unless given),
then a restart with the cache that start left, each in a process of its own, and prints both reports. Nothing
is set but the cache's folder: the server takes whichever way to compiled kernels works on this torch
(explorer.runtime.upgrade), and the report says which.

The released network runs as the app's default does (explorer.runtime.default_weights, EXPLORER_WEIGHTS=auto),
its weights file served by a stand-in Hub on 127.0.0.1 (tests/hub_server.py; a GPU machine here has no
network) into a Hugging Face cache beside the compile cache (empty on the cold start: the move to the
downloaded weights happens as it would; a restart finds them there, as a real one does); other
networks as an engine of random weights, as the Network box makes one. Until the compiled graph is in place
on the serving engine it keeps asking, as a class would (``engine.run`` on each sample photograph, timed); then
the same with the compiled graph. Reports: the way taken, the seconds to the first image and to the compiled
graph, each image's median / p99 / worst while compiling and after, the console's lines, GPU and process memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def spread(times: list[float]) -> dict[str, float] | None:
    """Median, 99th percentile and worst of a list of milliseconds."""
    if not times:
        return None
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(times),
        "median": round(statistics.median(times), 2),
        "p99": round(p99, 2),
        "worst": round(max(times), 2),
    }


def phase(network: str, cache: Path) -> dict:
    """One server start: everything timed from before the first engine."""
    work = Path(tempfile.mkdtemp())
    # The Hugging Face cache lives beside the compile cache: a restart finds the weights its first start fetched.
    hub_cache = str(cache.parent / "hub")
    os.environ.update(EXPLORER_COMPILE_CACHE=str(cache), HF_HUB_CACHE=hub_cache, HF_HUB_DOWNLOAD_TIMEOUT="600")
    os.environ.pop("EXPLORER_COMPILE", None)  # default settings
    log: list[tuple[float, str]] = []
    server = _Server(network, work, lambda line: log.append((time.perf_counter(), line)))

    import torch

    from explorer.runtime.images import load_image, sample_paths

    images = [load_image(p).image for p in sample_paths()]
    with server as (current, busy):
        start = server.started  # the server's start: after this benchmark's stand-in Hub is serving
        engine = current()
        engine.run(images[0])
        first = time.perf_counter() - start
        compiled_at_first = engine.gpu is not None and 1 in engine.gpu.compiled

        def settled() -> bool:
            engine = current()
            in_place = engine.gpu is None or not engine.gpu.compiling(1)  # in place, or given up (notes say why)
            return not busy() and in_place

        during: list[float] = []
        while not settled():  # a class keeps asking while the compile runs and the weights arrive
            for image in images:
                during.append(_timed(current().run, image))
        compiled_in = time.perf_counter() - start
        final = current()
        for image in images * 3:  # the new graph's first replays
            final.run(image)
        after = [_timed(final.run, image) for _ in range(50) for image in images]
        stages = final.run(images[0]).timings_ms
        way = final.gpu.compiled.get(1, "plain") if final.gpu is not None else "cpu"
        notes = list(final.gpu.notes) if final.gpu is not None else []
    peak_rss = next(
        int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line
    )
    return {
        "network": network,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "cpu cores": os.cpu_count(),
        "way to compiled kernels": way,
        "compiled from the first image": compiled_at_first,
        "first image s": round(first, 1),
        "compiled graph in place s": round(compiled_in, 1) if way not in ("plain", "cpu") else None,
        "per image ms while compiling": spread(during),
        "per image ms after": spread(after),
        "one run's stages ms": {k: round(v, 2) for k, v in stages.items()},
        "notes": notes,
        "gpu peak allocated MB": round(torch.cuda.max_memory_allocated() / 1e6) if torch.cuda.is_available() else 0,
        "process peak resident MB": round(peak_rss),
        "console": [f"{t - start:6.1f} s  {line}" for t, line in log],
    }


class _Server:
    """The serving engine for ``network`` as the app makes it: (the engine serving now, whether it may change)."""

    def __init__(self, network: str, work: Path, log: Callable[[str], None]) -> None:
        self.network, self.work, self.log = network, work, log
        self.hub = None
        self.started = 0.0

    def __enter__(self) -> tuple[Callable[[], object], Callable[[], bool]]:
        if self.network != "released":
            from explorer.nets import build_model
            from explorer.nets.weights import WeightsInfo
            from explorer.runtime.engine import Engine

            self.started = time.perf_counter()
            engine = Engine(build_model(self.network, seed=0), WeightsInfo("random", random=True), log=self.log)
            return (lambda: engine), (lambda: False)
        from safetensors.torch import save_file

        from explorer.nets import build_model
        from tests.hub_server import HubServer

        served = self.work / "model.safetensors"
        save_file({k: v.contiguous() for k, v in build_model("released", seed=11).state_dict().items()}, str(served))
        self.hub = HubServer().__enter__()
        self.hub.add("timm/inception_resnet_v2.tf_in1k", "model.safetensors", served)
        self.hub.state.hold = threading.Event()  # the download waits until the first image has been served
        os.environ.update(HF_ENDPOINT=self.hub.endpoint, EXPLORER_WEIGHTS="auto")  # before huggingface_hub is imported
        from explorer.runtime.default_weights import DefaultWeights

        self.started = time.perf_counter()
        defaults = DefaultWeights(log=self.log).start()
        defaults.current()
        threading.Timer(1.0, self.hub.state.hold.set).start()
        return (lambda: defaults.current()[1]), (lambda: defaults.status().busy)

    def __exit__(self, *exc: object) -> None:
        if self.hub is not None:
            self.hub.__exit__(*exc)


def _timed(call: Callable[..., object], *args: object) -> float:
    begin = time.perf_counter()
    call(*args)
    return (time.perf_counter() - begin) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--network", default="released", choices=("released", "inception-v4", "paper-v2", "paper-v1"))
    parser.add_argument("--cache", type=Path, help="the compiled builds' folder (default: a fresh one)")
    parser.add_argument("--phase", choices=("both", "cold", "restart"), default="both")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp()) / "compiled"
    if args.phase != "both":
        print(json.dumps(phase(args.network, cache)), flush=True)
        return
    reports = {}
    for name in ("cold", "restart"):  # each a process of its own: a restart is a new interpreter
        command = [sys.executable, "-m", "benchmarks.serving_gpu", "--network", args.network, "--cache", str(cache)]
        done = subprocess.run([*command, "--phase", name], cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reports[name] = {"failed": done.stderr.strip().splitlines()[-20:]}
            break
        reports[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
