"""One channel's circuit over 16 images, ablation check included, against timm doing the same work.

    python -m benchmarks.bench_circuit [--block repeat_1.5] [--channel 3] [--images 16] [--repeat 10] [--json FILE]

Ours: :func:`explorer.circuits.circuit` (the block's input, the channel's gradient x activation, the top 5 and 20
random 5-channel ablations). The peer, timm's ``inception_resnet_v2`` carrying the same weights, eager: the images
forward to the block's input, the block forward and backward for the channel's response, and the 21 ablated
inputs through the whole block in one batch (../shared/notes/gpu-measurements.md measured it at 40 ms on the
H200). Both in bf16 autocast and channels-last on a GPU, in float32 on a CPU; the median of ``--repeat`` runs after
two warm-ups. Prints the machine, both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine  # noqa: E402
from explorer.circuits import circuit, onward  # noqa: E402
from explorer.nets import build_model  # noqa: E402
from explorer.runtime.images import load_image, sample_paths  # noqa: E402
from explorer.runtime.preprocessing import crop_for_network, preprocessing_for, to_tensor  # noqa: E402


def photos(count: int) -> torch.Tensor:
    pre = preprocessing_for("released")
    each = [to_tensor(crop_for_network(load_image(p).image, pre), pre) for p in sample_paths()]
    return torch.cat([each[i % len(each)] for i in range(count)])


def timm_circuit(peer, x: torch.Tensor, stage: str, at: int, channel: int) -> None:
    """The peer's same work, as a user of timm writes it: modules called in order, autograd, one batch."""
    names = [name for name, _ in peer.named_children()]
    with torch.no_grad():
        for name in names[: names.index(stage)]:
            x = getattr(peer, name)(x)
        blocks = getattr(peer, stage)
        for block in blocks[:at]:
            x = block(x)
    block = blocks[at]
    leaf = x.detach().requires_grad_(True)
    response = block(leaf)[:, channel].flatten(1).amax(1)
    (gradient,) = torch.autograd.grad(response.sum(), leaf)
    scores = (gradient * leaf).sum((2, 3)).mean(0)
    top = scores.argsort(descending=True)[:5]
    masks = torch.ones(21, x.shape[1], device=x.device, dtype=x.dtype)
    masks[0, top] = 0
    for row in range(1, 21):
        masks[row, torch.randperm(x.shape[1], device=x.device)[:5]] = 0
    with torch.no_grad():
        ablated = (x.detach()[None] * masks[:, None, :, None, None]).flatten(0, 1)
        block(ablated)[:, channel].flatten(1).amax(1).view(21, -1).mean(1).cpu()


def timed(work, device: torch.device, repeat: int) -> float:
    for _ in range(2):
        work()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", default="repeat_1.5")
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    import timm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    layout = torch.channels_last if gpu else torch.contiguous_format
    model = build_model("released").requires_grad_(False).to(device, memory_format=layout)
    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    peer.load_state_dict(model.state_dict())
    peer = peer.requires_grad_(False).to(device, memory_format=layout)
    x = photos(args.images).to(device, memory_format=layout)
    stage, at = args.block.rsplit(".", 1)
    precision = torch.autocast("cuda", torch.bfloat16) if gpu else nullcontext()

    def ours() -> None:
        with precision:
            circuit(model, x, args.block, args.channel, k=5, draws=20)

    def theirs() -> None:
        with precision:
            timm_circuit(peer, x, stage, int(at), args.channel)

    report = {
        "machine": machine(),
        "block": args.block,
        "images": args.images,
        "precision": "bf16 autocast, channels-last" if gpu else "float32",
        "ours, s": timed(ours, device, args.repeat),
        "timm, s": timed(theirs, device, args.repeat),
    }
    report["ours / timm"] = report["ours, s"] / report["timm, s"]
    if gpu:  # the same circuit in float32 on the GPU and on the CPU: the GPU path's correctness
        on_gpu = circuit(model.to(memory_format=torch.contiguous_format), x.contiguous(), args.block, args.channel)
        on_cpu = circuit(build_model("released"), x.cpu().contiguous(), args.block, args.channel)
        top = [c.channel for c in on_cpu.inputs[:10]]
        report["gpu fp32 = cpu: top-10 inputs"] = [c.channel for c in on_gpu.inputs[:10]] == top
        report["gpu fp32 vs cpu: largest score difference"] = max(
            abs(a.score - b.score) for a, b in zip(on_gpu.inputs[:10], on_cpu.inputs[:10], strict=True)
        )
        report["ablation top, gpu / cpu"] = [on_gpu.ablation.top, on_cpu.ablation.top]
        forward = onward(model, x, args.block, args.channel)
        report["onward on the gpu: next block, top channel"] = [forward.next_block, forward.channels[0][0]]
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
