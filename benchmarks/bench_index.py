"""The dataset-examples index: how fast, against the usual way and against our bare forward, in one run.

    python -m benchmarks.bench_index [--part tensors|files|cpu|all ...] [--batch-size 256] [--images N] [--json FILE]

check    the GPU's index of the tests' folder against the CPU's float32 one (float32 and bf16, each decoder), and
         the compiled merge against torch.topk's on the GPU.
tensors  from decoded crops already on the device (other images every batch, as over a real folder), at one batch
         size, bf16 channels-last on a GPU:
         - ours: the index's step (explorer.channels.index.forward.ChannelMaxima, torch.compile'd) and the running top-K
           merge on the device (one compiled kernel: ChannelTop(fused=True)), each batch merged once the next
           one's forward is queued, as build_index does;
           twice: with each channel's maximum alone in the forward and its position located afterwards for the
           entries that enter the top K (locate_later), and with max, position and mean found in the forward;
         - bare: our inference copy's forward_features, torch.compile'd, nothing reduced (both from the same
           decoded uint8 crops, normalised on the device; also from an input already normalised);
           and as the index was before it kept records (no head, no top-5, no class tables, no atlas vectors),
           the figure the issue 40 target compares with: the records may cost 10 % at most;
         - peer (the usual way): timm eager, forward hooks on every block copying its output to the host, where
           each block's per-channel max and torch.topk over the batch are merged into the running top-K.
files    a generated folder of JPEGs (500x375, ImageNet validation's usual size), the whole command's work
         (explorer.channels.build_index): with nvJPEG decoding on the GPU and with Pillow in DataLoader workers;
         and what decoding alone reaches each way (the rate decoding bounds the index to); with nvJPEG also
         with labels (--classes folders: a class per thousand images) and the default atlas blocks' vectors.
cpu      the whole index of 200 generated JPEGs on this CPU, random weights, the default precision.

Random weights throughout: the speed does not depend on them. The machine (CPU name and flags, GPU) is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_cpu import cpu_flags  # noqa: E402
from explorer.channels import build_index  # noqa: E402
from explorer.channels.index.folder import list_files  # noqa: E402
from explorer.channels.index.forward import ChannelMaxima  # noqa: E402
from explorer.channels.index.indexer import LaunchedBatch, default_atlas_blocks, picks_for  # noqa: E402
from explorer.channels.index.nvjpeg import gpu_crops  # noqa: E402
from explorer.channels.index.records import ClassSums, ImageRecords  # noqa: E402
from explorer.channels.index.saved import Run  # noqa: E402
from explorer.channels.index.top import ChannelTop  # noqa: E402
from explorer.nets import make_config  # noqa: E402
from explorer.nets.loading import load_weights  # noqa: E402
from explorer.runtime.fastpath import inference_copy  # noqa: E402
from explorer.runtime.images import sample_paths  # noqa: E402
from explorer.runtime.preprocessing import TF_IN1K, normalise  # noqa: E402

K = 9


def machine() -> str:
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown CPU",
    )
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; {name}, {os.cpu_count()} cores ({cpu_flags()}); torch {torch.__version__}"


WARMUP = 3
OURS = "ours (index step + top-K merge; positions located later)"
INLINE = "ours, positions found in the forward (the default on GPUs)"
BEFORE = "ours without records (the index before issue 40: no top-5, class tables nor atlas vectors)"
PEER = "peer (timm, hooks, maps to host, topk on host)"


def rate(step, batches: int, batch: int, warmup: int = WARMUP) -> float:
    """Images per second over ``batches`` calls of ``step`` (after ``warmup``), the device synchronised."""
    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync()
    return batches * batch / (time.perf_counter() - start)


def said(name: str, value: float) -> float:
    """A figure printed as soon as it is measured (a run cut short still shows what it measured)."""
    print(f"{name}: {value:,.0f} images/s", flush=True)
    return value


def tensors_part(batch: int, batches: int) -> dict:
    device, dtype = torch.device("cuda"), torch.bfloat16
    model, _ = load_weights("random", make_config("released"))
    fast = inference_copy(model).requires_grad_(False).to(device, dtype, memory_format=torch.channels_last)
    # Other images every batch, as over a real folder: how many enter a channel's top K falls as more are seen,
    # and locating their maxima costs accordingly (the same batch again would enter nothing).
    pool = [
        torch.randint(0, 256, (batch, 299, 299, 3), dtype=torch.uint8, device=device) for _ in range(batches + WARMUP)
    ]
    turn = iter(range(10**9))
    results = {}

    def prepared(crops: torch.Tensor) -> torch.Tensor:  # decoded crops (uint8) as the network's input: both do it
        return normalise(crops, TF_IN1K).to(dtype).contiguous(memory_format=torch.channels_last)

    def next_crops() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        i = next(turn)
        files = np.arange(i * batch, (i + 1) * batch)
        return pool[i % len(pool)], torch.from_numpy(files).to(device, non_blocking=True), files

    x = prepared(pool[0])
    with torch.inference_mode():
        bare = torch.compile(fast.forward_features, dynamic=False)
        results["bare compiled forward"] = said("bare", rate(lambda: bare(prepared(next_crops()[0])), batches, batch))
        results["bare compiled forward, input already normalised"] = said(
            "bare, normalised", rate(lambda: bare(x), batches, batch)
        )
        picks = torch.from_numpy(picks_for([f"{i:06d}.jpg" for i in range(batch)], 4, 0)).to(device)
        for name, keep_maps, records in ((OURS, True, True), (INLINE, False, True), (BEFORE, True, False)):
            atlas = default_atlas_blocks(model.block_names()) if records else ()
            forward = ChannelMaxima(fast, packed=not keep_maps, keep_maps=keep_maps, head=records, atlas=atlas)
            step = torch.compile(forward, dynamic=False)
            channels = step(x, picks)["maxima"].shape[1]
            labels = ClassSums(channels, device) if records else None
            top, queued = ChannelTop.empty(channels, K, device, fused=True), deque()
            run = Run(top, ImageRecords(atlas), ClassSums(channels, device), labels)

            def ours(step=step, run=run, queued=queued, records=records) -> None:  # as build_index runs a batch
                crops, ids, files = next_crops()
                classes = (files // 1000).tolist() if records else None  # a class a thousand images
                chosen = picks_for([f"{i:06d}.jpg" for i in files.tolist()], 4, 0)  # as build_index: by path
                outputs = step(prepared(crops), torch.from_numpy(chosen).to(device, non_blocking=True))
                queued.append(LaunchedBatch.launched(outputs, ids, files, classes))
                if len(queued) > 1:
                    queued.popleft().merge_into(run)

            turn = iter(range(10**9))  # the same images for each: from the first, entering the top K as they come
            results[name] = said(name, rate(ours, batches, batch))
            while queued:
                queued.popleft().merge_into(run)
            results[f"{name}: the step alone (no merge, no normalising)"] = said(
                f"{name}: step alone", rate(lambda s=step: s(x, picks), batches, batch)
            )
            del step, top, queued, run
        results[PEER] = said(PEER, peer_rate(model, pool[0], dtype, max(2, batches // 10)))
    return results


def peer_rate(model, crops: torch.Tensor, dtype: torch.dtype, batches: int) -> float:
    import timm

    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    peer.load_state_dict(model.state_dict())
    peer = peer.to("cuda", dtype, memory_format=torch.channels_last)
    names = model.block_names()
    running: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def keep(_module, _inputs, output):
            host = output.float().cpu()  # the usual way: every map to the host
            values = host.flatten(2).amax(2).t()  # (C, B)
            mine = torch.cat([running[name][0], values], 1) if name in running else values
            best = mine.topk(min(K, mine.shape[1]), dim=1)
            running[name] = (best.values, best.indices)

        return keep

    for name in names:
        peer.get_submodule(name).register_forward_hook(hook(name))
    x = normalise(crops, TF_IN1K).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return rate(lambda: peer(x), batches, crops.shape[0], warmup=1)


def _write_jpeg(args: tuple[int, str]) -> None:
    from PIL import Image, ImageOps

    i, folder = args
    rng = np.random.default_rng(i)
    photos = sample_paths()
    image = Image.open(photos[i % len(photos)]).convert("RGB")
    width, height = image.size
    scale = rng.uniform(0.5, 1.0)
    w, h = int(width * scale), int(height * scale)
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    image = image.crop((left, top, left + w, top + h)).resize((500, 375))
    if i % 2:
        image = ImageOps.mirror(image)
    Path(folder, f"{i // 1000:03d}").mkdir(exist_ok=True)  # a thousand a sub-folder, as datasets are laid out
    image.save(Path(folder, f"{i // 1000:03d}", f"{i:06d}.jpg"), quality=90)


def make_jpegs(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_jpeg, [(i, str(folder)) for i in range(count)], chunksize=64))
    return folder


def decode_rate(folder: Path, workers: int, batch: int, on_gpu: bool) -> float:
    from torch.utils.data import DataLoader

    from explorer.channels.index.indexer import _FolderImages

    files = list_files(folder)
    data = _FolderImages(folder, files, list(range(len(files))), TF_IN1K, jpegs_raw=on_gpu)
    loader = DataLoader(data, batch_size=batch, num_workers=workers, collate_fn=list)
    start = time.perf_counter()
    for items in loader:
        if on_gpu:
            torch.stack(gpu_crops(items, torch.device("cuda"), TF_IN1K))
    if on_gpu:
        torch.cuda.synchronize()
    return len(files) / (time.perf_counter() - start)


def files_part(batch: int, count: int) -> dict:
    workers = max(1, (os.cpu_count() or 2) - 1)
    model, info = load_weights("random", make_config("released"))
    results = {"images": count, "workers": workers}
    with tempfile.TemporaryDirectory() as where:
        folder = make_jpegs(Path(where, "jpegs"), count)
        results["decode only, Pillow in workers"] = decode_rate(folder, workers, batch, on_gpu=False)
        results["decode only, nvJPEG on the GPU"] = decode_rate(folder, workers, batch, on_gpu=True)
        for gpu_decode, labelled in ((True, False), (True, True), (False, False)):
            out, seen = Path(where, f"index-{gpu_decode}-{labelled}"), []
            start = time.perf_counter()
            build_index(
                folder,
                out,
                model,
                info,
                top_k=K,
                batch_size=batch,
                workers=workers,
                device="cuda",
                dtype=torch.bfloat16,
                compile=True,
                gpu_decode=gpu_decode,
                classes="folders" if labelled else None,
                atlas=None if labelled else (),
                progress=seen.append,
            )
            name = ("nvJPEG" if gpu_decode else "Pillow") + (", labels and atlas vectors" if labelled else "")
            results[f"index from files, {name} decoding, whole run (compile included)"] = count / (
                time.perf_counter() - start
            )
            half, last = seen[len(seen) // 2], seen[-1]  # the second half: the compiled graph in place
            results[f"index from files, {name} decoding, steady"] = (last.done - half.done) / (
                last.seconds - half.seconds
            )
    return results


def cpu_part(count: int = 200) -> dict:
    from explorer.runtime.device import cpu_dtype_here

    model, info = load_weights("random", make_config("released"))
    with tempfile.TemporaryDirectory() as where:
        folder = make_jpegs(Path(where, "jpegs"), count)
        start = time.perf_counter()
        build_index(
            folder, Path(where, "index"), model, info, top_k=K, batch_size=16, workers=1, dtype=cpu_dtype_here()
        )
        seconds = time.perf_counter() - start
    return {"images": count, "seconds": seconds, "images/s": count / seconds, "precision": str(cpu_dtype_here())}


def check_part() -> dict:
    """The GPU's index against the CPU's float32 one on the tests' folder: the share of slots holding the same
    image, and the largest difference of values relative to each block's largest."""
    from tests.index_folder import make_folder

    model, info = load_weights("random", make_config("released"))
    results = {}
    with tempfile.TemporaryDirectory() as where:
        folder = make_folder(Path(where))
        reference = Path(where, "cpu")
        build_index(folder, reference, model, info, top_k=K, batch_size=8, dtype=torch.float32)
        runs = {
            "cuda fp32 eager, Pillow decoding": dict(dtype=torch.float32, compile=False, gpu_decode=False),
            "cuda fp32 eager, nvJPEG decoding": dict(dtype=torch.float32, compile=False, gpu_decode=True),
            "cuda bf16 compiled, nvJPEG decoding": dict(dtype=torch.bfloat16, compile=True, gpu_decode=True),
        }
        for name, settings in runs.items():
            out = Path(where, name.replace(" ", "_").replace(",", ""))
            build_index(folder, out, model, info, top_k=K, batch_size=8, device="cuda", **settings)
            results[name] = compare(out, reference)
    results["the fused merge (compiled, by rounds) equals torch.topk's"] = fused_merge_check()
    return results


def fused_merge_check(channels: int = 51_440, batch: int = 256, batches: int = 6) -> bool:
    """The compiled merge against the eager one on the GPU, number for number: random maxima rounded to a few
    values, so that many are equal and the order of their images decides."""
    device = torch.device("cuda")
    tops = [ChannelTop.empty(channels, K, device, fused=fused) for fused in (False, True)]
    generator = torch.Generator(device).manual_seed(0)
    for b in range(batches):
        n = batch if b < batches - 1 else batch // 3  # the last batch short, as a folder's is
        maxima = torch.randint(0, 8, (n, channels), device=device, generator=generator).float()
        positions = torch.randint(0, 64, (n, channels), device=device, generator=generator)
        means = torch.rand(n, channels, device=device, generator=generator)
        images = torch.arange(b * batch, b * batch + n, device=device)
        for top in tops:
            top.add(maxima, positions, means, images)
    eager, fused = tops
    return bool(
        torch.equal(eager.keys, fused.keys)
        and torch.equal(eager.positions, fused.positions)
        and torch.equal(eager.sums, fused.sums)
    )


def compare(a: Path, b: Path) -> dict:
    listed = [json.loads((p / "manifest.json").read_text())["images"] for p in (a, b)]
    if listed[0] != listed[1]:
        return {"same images listed": False}
    same = slots = placed = 0
    worst = 0.0
    for block in json.loads((b / "manifest.json").read_text())["blocks"]:
        x, y = (np.load(p / f"{block['name']}.npz") for p in (a, b))
        agree = x["images"] == y["images"]
        same += int(agree.sum())
        placed += int((agree & (x["positions"] == y["positions"]).all(-1)).sum())
        slots += x["images"].size
        worst = max(worst, float(np.abs(x["values"] - y["values"]).max() / np.abs(y["values"]).max()))
    return {
        "same images listed": True,
        "same image": same / slots,
        "same image and position": placed / slots,
        "largest value difference (of the block's largest)": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", nargs="+", choices=("check", "tensors", "files", "cpu", "all"), default=["all"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--images", type=int, default=20_000, help="JPEGs generated for the files part")
    parser.add_argument("--json")
    args = parser.parse_args()
    parts = {"check", "tensors", "files", "cpu"} if "all" in args.part else set(args.part)
    report = {"machine": machine()}
    print(report["machine"])
    if "check" in parts and torch.cuda.is_available():
        report["check"] = check_part()
        print(json.dumps(report["check"], indent=1))
    if "tensors" in parts and torch.cuda.is_available():
        report["tensors"] = tensors_part(args.batch_size, args.batches)
        t = report["tensors"]
        t["ours / bare"] = t[OURS] / t["bare compiled forward"]
        t["ours inline / bare"] = t[INLINE] / t["bare compiled forward"]
        t["ours / peer"] = t[OURS] / t[PEER]
        print(json.dumps(t, indent=1))
    if "files" in parts and torch.cuda.is_available():
        report["files"] = files_part(args.batch_size, args.images)
        print(json.dumps(report["files"], indent=1))
    if "cpu" in parts:
        report["cpu"] = cpu_part()
        print(json.dumps(report["cpu"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
