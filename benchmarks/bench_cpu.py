"""CPU benchmark: this project's forward and full single-image path against timm's forward.

    python -m benchmarks.bench_cpu [--repeats N]

Measured in one run, interleaved (each round times every contender once), medians reported as
ratios to timm's forward. Also the library's first result after a cold start: a fresh Python process
that imports the engine, builds the model on random weights and runs one sample end to end (the
whole app, server and browser included: benchmarks/first_result.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.nets import build_model  # noqa: E402
from explorer.nets.weights import WeightsInfo  # noqa: E402
from explorer.runtime import Engine, cpu_bf16_native  # noqa: E402
from explorer.runtime.fastpath import inference_copy  # noqa: E402
from explorer.runtime.images import load_image  # noqa: E402

COLD_START = """
import time; start = time.perf_counter()
from explorer.runtime.images import load_image
from explorer.runtime import Engine
from explorer.nets import make_config
from explorer.nets.weights import random_weights
model, info = random_weights(make_config("released"))
result = Engine(model, info, device="cpu").run(load_image("explorer/samples/cat.jpg").image)
print(time.perf_counter() - start)
"""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags() -> str:
    """The CPU flags that decide the speed of these kernels."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
    return " ".join(flag for flag in wanted if f" {flag}" in text) or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import timm

    x = torch.randn(1, 3, 299, 299)
    image = load_image(ROOT / "explorer" / "samples" / "cat.jpg").image
    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    model = build_model("released")
    fast = inference_copy(model)
    fast_cl = inference_copy(model).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    fp32 = Engine(build_model("released"), WeightsInfo("random", random=True), device="cpu", cpu_dtype=torch.float32)
    contenders = {
        "timm forward": lambda: peer(x),
        "ours forward (as built)": lambda: model(x),
        "ours forward (engine's copy: BN folded, heads merged)": lambda: fast(x),
        "ours forward (engine's copy, channels-last: the engine's layout)": lambda: fast_cl(x_cl),
        "ours full single-image path, fp32 (preprocess, forward, all maps)": lambda: fp32.run(image),
    }
    if cpu_bf16_native():  # the engine's default here; where bf16 is not native, fp32 is the default
        bf16 = Engine(build_model("released"), WeightsInfo("random", random=True), device="cpu")
        contenders[f"ours full single-image path, {bf16.precision} (the default here)"] = lambda: bf16.run(image)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with torch.inference_mode():
        for fn in contenders.values():
            fn()
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
    cold = [
        float(
            subprocess.run(
                [sys.executable, "-c", COLD_START], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    base = statistics.median(times["timm forward"])
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"native bf16 (AVX512-BF16 or AMX): {cpu_bf16_native()}; flags: {cpu_flags()}")
    print(f"kernels: {torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA may cap them)")
    print(f"{args.repeats} interleaved rounds")
    print(f"{'contender':<62} {'median ms':>10} {'x timm forward':>15}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<62} {median:10.1f} {median / base:15.3f}")
    print(f"{'first result after a cold start (s, median of 3)':<62} {statistics.median(cold):10.2f}")


if __name__ == "__main__":
    main()
