"""GPU benchmark: this project's pipeline against timm's inception_resnet_v2, measured in one run.

    python -m benchmarks.bench_gpu [--part latency|breakdown|throughput|check|inside|all ...] [--json FILE]

latency     batch 1, from a preprocessed tensor on the device to every block's maps on the host:
            - peer: timm eager, bf16, channels-last, forward hooks on every block computing the
              channel-mean map, each map copied to the host (the usual way to do this);
            - timm's bare forward (logits only) replayed as a CUDA graph;
            - this project's Engine: BN folded, bf16, channels-last, forward + every block's mean,
              max, top-k maps and statistics + top-5, captured as one CUDA graph, one copy out
              (eager kernels, and torch.compile'd kernels).
throughput  batch 256 bf16 channels-last forward: timm eager, timm torch.compile, ours eager,
            ours torch.compile, ours torch.compile replayed as a CUDA graph.
check       bf16 against float32 on the sample photographs: same top-1 (a prototype head gives
            each photo a known class), maps correlating >= 0.99.
run         engine.run(image) on the sample photographs, preprocessing included, compiled graph in place.
inside      the outputs inside a block (explorer.runtime.inside) on the GPU against the CPU's, and the
            time to open a block.

Random weights throughout: timing does not depend on them. Medians of repeated runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.nets import build_model  # noqa: E402
from explorer.nets.weights import WeightsInfo  # noqa: E402
from explorer.runtime import CapturedPipeline, Engine  # noqa: E402
from explorer.runtime.fastpath import fold_batch_norms  # noqa: E402
from explorer.runtime.pipeline import pipeline  # noqa: E402

BF16 = torch.bfloat16
CL = torch.channels_last


def median_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def timm_model() -> torch.nn.Module:
    import timm

    return timm.create_model("inception_resnet_v2", pretrained=False).cuda().eval().to(memory_format=CL)


def timm_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    blocks = []
    for name, child in model.named_children():
        if name in ("global_pool", "head_drop", "classif"):
            continue
        blocks += list(child) if name.startswith("repeat") else [child]
    return blocks


def capture(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def latency(results: dict) -> None:
    x = torch.randn(1, 3, 299, 299, device="cuda").contiguous(memory_format=CL)
    peer_model = timm_model()
    maps: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda _m, _i, out: maps.append(out.mean(1))) for b in timm_blocks(peer_model)]

    def peer() -> None:
        maps.clear()
        with torch.inference_mode(), torch.autocast("cuda", dtype=BF16):
            logits = peer_model(x)
        [m.float().cpu() for m in maps]
        logits.float().softmax(1).cpu()

    results["peer pipeline (timm eager + hooks + maps to host)"] = median_ms(peer)
    for handle in handles:
        handle.remove()

    with torch.inference_mode(), torch.autocast("cuda", dtype=BF16):
        replay = capture(lambda: peer_model(x))
    results["timm bare forward, CUDA graph"] = median_ms(replay, repeats=200)

    model = build_model("released")
    for compile_ in (False, True):
        start = time.perf_counter()
        engine = Engine(model, WeightsInfo("random", random=True), device="cuda", compile=compile_)
        engine.gpu.wait_compiled(1)  # the engine serves plain kernels until its compiled graph is swapped in
        warmup_s = time.perf_counter() - start
        captured = engine.gpu.captured(1)
        label = f"ours end-to-end, CUDA graph{', compiled' if compile_ else ''}"
        results[label] = median_ms(lambda captured=captured: captured(x), repeats=200)
        results[f"{label}: warm-up seconds"] = warmup_s
        results[f"{label}: bytes to host"] = captured.host.numel() * captured.host.element_size()


def breakdown(results: dict) -> None:
    """Where the end-to-end time goes: the forward alone (plain and compiled kernels), the pipeline
    with its reductions on the main stream instead of a second one, graph replay alone, the copy out."""
    x = torch.randn(1, 3, 299, 299, device="cuda").contiguous(memory_format=CL)
    engine = Engine(build_model("released"), WeightsInfo("random", random=True), device="cuda", compile=False)
    with torch.inference_mode(), torch.autocast("cuda", dtype=BF16):
        forward = capture(lambda: engine.model(x))
        results["breakdown: ours forward only, CUDA graph"] = median_ms(forward, repeats=200)
        compiled = torch.compile(engine.model, dynamic=False)
        forward = capture(lambda: compiled(x))
        results["breakdown: ours forward only, compiled, CUDA graph"] = median_ms(forward, repeats=200)
    serial = CapturedPipeline(engine.model, 1, 8, 299, compile=True, overlap=False)
    results["breakdown: ours end-to-end, compiled, reductions on the main stream"] = median_ms(
        lambda: serial(x), repeats=200
    )
    overlapped = CapturedPipeline(engine.model, 1, 8, 299, compile=True, overlap=True)
    results["breakdown: ours forward + maps on the GPU, compiled, graph replay only"] = median_ms(
        overlapped.graph.replay, repeats=200
    )

    def copy_out() -> None:
        overlapped.host.copy_(overlapped.output, non_blocking=True)
        torch.cuda.current_stream().synchronize()

    results["breakdown: one copy of the packed maps to pinned host memory"] = median_ms(copy_out, repeats=200)


def throughput(results: dict, batch: int = 256) -> None:
    x = torch.randn(batch, 3, 299, 299, device="cuda").contiguous(memory_format=CL)

    def images_per_second(fn: Callable[[], object]) -> float:
        return batch / median_ms(fn, repeats=20, warmup=5) * 1000

    peer_model = timm_model()
    ours = fold_batch_norms(build_model("released")).cuda().to(memory_format=CL).eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=BF16):
        results["timm eager, img/s"] = images_per_second(lambda: peer_model(x))
        results["ours eager, img/s"] = images_per_second(lambda: ours(x))
        start = time.perf_counter()
        timm_compiled = torch.compile(peer_model)
        results["timm compiled, img/s"] = images_per_second(lambda: timm_compiled(x))
        results["timm compile seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        ours_compiled = torch.compile(ours)
        results["ours compiled, img/s"] = images_per_second(lambda: ours_compiled(x))
        results["ours compile seconds"] = time.perf_counter() - start
        replay = capture(lambda: ours_compiled(x))
        results["ours compiled + CUDA graph, img/s"] = images_per_second(replay)
        maps = CapturedPipeline(ours, 64, 8, 299, compile=False)
        x64 = x[:64]
        results["ours full pipeline (all maps to host), batch 64, img/s"] = (
            64 / median_ms(lambda: maps(x64), repeats=10, warmup=3) * 1000
        )


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def check(results: dict) -> None:
    from tests.conftest import image_tensor
    from tests.prototype import set_prototype_head

    paths = sorted((ROOT / "explorer" / "samples").glob("*.jpg"))
    images = torch.cat([image_tensor(p) for p in paths]).cuda()
    model = build_model("released", seed=3).cuda()
    set_prototype_head(model, images)
    # Built on a thread of its own, as the app's start-up hook builds its engine: compiling and
    # capturing must work off the main thread.
    with ThreadPoolExecutor(1) as pool:
        build = pool.submit(Engine, model, WeightsInfo("prototype head", random=False), device="cuda", top_k=8)
        engine = build.result()
    engine.gpu.captured(len(paths))  # plain kernels at once; the compiled graph follows in the background
    results["check: engine built off the main thread, compiled"] = engine.gpu.wait_compiled(len(paths))
    engine.gpu.wait_compiled(1)  # no capture may still run when the other parts draw random numbers on the GPU
    crops = [np.zeros((299, 299, 3), np.uint8)] * len(paths)
    with torch.inference_mode():
        exact, layout = pipeline(engine.model, images.contiguous(memory_format=CL), 8)  # float32 on the GPU
    fast = engine.gpu.captured(len(paths))(images.contiguous(memory_format=CL))  # the bf16 captured graph
    same_top1, worst, where = 0, 1.0, ""
    for i, (row_exact, row_fast) in enumerate(zip(exact.cpu().numpy(), fast, strict=True)):
        want = engine.unpack(row_exact, layout, crops[i], ())
        got = engine.unpack(row_fast, layout, crops[i], ())
        same_top1 += want.top5[0].index == got.top5[0].index == i
        for a, b in zip(want.blocks, got.blocks, strict=True):
            # mean and max maps; the top-k maps are compared where both picked the same channels
            pairs = [(a.mean, b.mean), (a.max, b.max)]
            pairs += [(a.top_maps[j], b.top_maps[j]) for j, c in enumerate(a.top_channels) if b.top_channels[j] == c]
            lowest = min(correlation(p, q) for p, q in pairs)
            if lowest < worst:
                worst, where = lowest, f"{paths[i].name} {a.name}"
    results["check: same top-1 as float32 (of 6 photos)"] = same_top1
    results["check: worst map correlation bf16 vs float32"] = worst
    results["check: worst map at"] = where


def inside(results: dict) -> None:
    """The inside of a block on the GPU: the same outputs as on the CPU, and the time to open one."""
    from explorer.runtime.images import load_image, sample_path

    image = load_image(sample_path("cat")).image
    model = build_model("released", seed=3)
    cpu = Engine(build_model("released", seed=3), WeightsInfo("random", random=True), device="cpu")
    gpu = Engine(model, WeightsInfo("random", random=True), device="cuda", compile=False)
    on_cpu, on_gpu = cpu.block_inputs(image), gpu.block_inputs(image)
    worst, where = 0.0, ""
    for block in ("conv2d_1a", "mixed_5b", "repeat.0", "mixed_6a", "repeat_1.0", "mixed_7a", "block8"):
        for a, b in zip(cpu.inside(on_cpu, block), gpu.inside(on_gpu, block), strict=True):
            error = float(np.abs(a.mean_map - b.mean_map).max() / (np.abs(a.mean_map).max() + 1e-12))
            if error > worst:
                worst, where = error, a.name
    results["inside: worst relative error of a mean map, GPU vs CPU (float32)"] = worst
    results["inside: worst at"] = where
    results["inside: block inputs of one image, ms"] = median_ms(lambda: gpu.block_inputs(image), 20, 3)
    results["inside: open repeat_1.0, ms"] = median_ms(lambda: gpu.inside(on_gpu, "repeat_1.0"), 20, 3)


def run_image(results: dict) -> None:
    """``engine.run`` on the sample photographs as a server runs it, with the compiled graph in place: median."""
    from explorer.runtime.images import load_image

    images = [load_image(p).image for p in sorted((ROOT / "explorer" / "samples").glob("*.jpg"))]
    engine = Engine(build_model("released"), WeightsInfo("random", random=True), device="cuda")
    results["run: compiled graph in place"] = engine.gpu.wait_compiled(1)
    times, stages = [], []
    for _ in range(20):
        for image in images:
            result = engine.run(image)
            times.append(result.timings_ms["total"])
            stages.append(result.timings_ms)
    results["run: engine.run(image), median ms"] = statistics.median(times)
    for stage in stages[0]:
        if stage != "total":
            results[f"run: {stage}, median ms"] = statistics.median(s[stage] for s in stages)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--part",
        nargs="+",
        choices=("latency", "breakdown", "throughput", "check", "inside", "run", "all"),
        default=["all"],
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    parts = (
        ("check", check),
        ("inside", inside),
        ("run", run_image),
        ("latency", latency),
        ("breakdown", breakdown),
        ("throughput", throughput),
    )
    for part, run in parts:
        if part in args.part or "all" in args.part:
            run(results)
            print(json.dumps(results, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(r: dict) -> None:
    print(f"\n{r['device']}, torch {r['torch']}")
    peer = r.get("peer pipeline (timm eager + hooks + maps to host)")
    for key, value in r.items():
        if key in ("device", "torch") or not isinstance(value, float | int):
            continue
        ratio = ""
        if peer and key.startswith(("ours end-to-end", "timm bare")) and key.endswith(("graph", "compiled")):
            ratio = f"  {value / peer:.3f} x peer pipeline"
        if key.startswith("ours") and key.endswith("img/s") and r.get("timm compiled, img/s"):
            ratio = f"  {value / r['timm compiled, img/s']:.3f} x timm compiled"
        print(f"{key:<62} {value:12.2f}{ratio}")


if __name__ == "__main__":
    main()
