"""``irv2-explorer index``: dataset examples, each channel's strongest images in a folder (also under torchrun)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from explorer.cli import parents
from explorer.cli.engines import load_model


def _index(args: argparse.Namespace) -> int:
    import torch

    from explorer.channels import IndexInterrupted, build_index
    from explorer.channels.index.sharing import start_processes
    from explorer.runtime.builds import Request
    from explorer.runtime.device import cpu_dtype_here, pick_device, precision_allowed
    from explorer.runtime.upgrade import Memory, compiled_or_plain

    if args.top < 1 or args.batch_size < 1 or args.workers < 0:
        raise ValueError("--top and --batch-size take a whole number from 1, --workers from 0")
    device, note = pick_device(args.device)
    ranks, where = start_processes(device.type)
    if note and ranks.rank == 0:
        print(f"note: {note}", file=sys.stderr)
    model, info = load_model(args.weights, args.variant, args.labels, **parents.overrides(args))
    if args.precision == "auto":
        on_gpu = where.startswith("cuda")
        dtype = (torch.bfloat16 if precision_allowed() else torch.float32) if on_gpu else cpu_dtype_here()
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.precision]
    compile = {"auto": where.startswith("cuda"), "on": True, "off": False}[args.compile]
    bar = _Bar() if ranks.rank == 0 else None

    def build(compiled: bool) -> dict:
        return build_index(
            args.folder,
            args.out,
            model,
            info,
            top_k=args.top,
            batch_size=args.batch_size,
            workers=args.workers,
            device=where,
            dtype=dtype,
            compile=compiled,
            classes=args.classes,
            atlas=None if args.atlas is None else [b for b in args.atlas if b != "none"],
            per_image=args.atlas_per_image,
            progress=bar,
        )

    try:
        if compile:  # auto: plain kernels where compiling fails (said, and remembered for the next run)
            size, precision = model.config.input_size, "bf16" if dtype == torch.bfloat16 else "fp32"
            memory = Memory(Request(model.config, where, args.batch_size, args.top, size, precision), purpose="index")
            manifest = compiled_or_plain(build, memory, required=args.compile == "on", log=_note(ranks.rank))
        else:
            manifest = build(False)
    except IndexInterrupted as stop:
        print(f"\n{stop.message}", file=sys.stderr)
        return 130
    if ranks.rank == 0:
        bar and bar.finish()
        skipped = manifest["skipped"]
        print(
            f"{args.out}: {len(manifest['images'])} images, {len(manifest['blocks'])} blocks, top {args.top} per "
            f"channel ({info.source}, {manifest['precision']} on {where}, {ranks.world} process"
            f"{'es' if ranks.world > 1 else ''})"
        )
        labelled = manifest["classes"]
        if labelled:
            without = sum(1 for entry in manifest["images"] if entry.get("label") is None)
            print(
                f"classes: {len(labelled['names'])} from {labelled['from']}"
                + (f"; {without} images without one (not in the class tables)" if without else "")
            )
        if manifest["atlas"]["blocks"]:
            print(
                f"atlas vectors: {manifest['atlas']['per_image']} an image of {', '.join(manifest['atlas']['blocks'])}"
            )
        for entry in skipped[:10]:
            print(f"skipped: {entry['reason']}", file=sys.stderr)
        if len(skipped) > 10:
            print(f"skipped: {len(skipped) - 10} more (the manifest lists them all)", file=sys.stderr)
    return 0


def _note(rank: int) -> Callable[[str], None]:
    """A line on standard error, from the first process only."""
    return lambda line: print(f"note: {line}", file=sys.stderr) if rank == 0 else None


class _Bar:
    """Images, images/s and the time left, on one line of a terminal (a line a batch elsewhere, for logs)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, progress: object) -> None:
        done, total, rate = progress.done, progress.total, progress.rate
        left = (total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / max(total, 1))
        line = (
            f"indexing [{'#' * filled}{'.' * (width - filled)}] {done}/{total} images, "
            f"{rate:.1f} images/s, {time.strftime('%M:%S', time.gmtime(left))} left"
        )
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        self.shown = True

    def finish(self) -> None:
        if self.tty and self.shown:
            print(file=sys.stderr)


def add_to(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser(
        "index",
        parents=[parents.network(), parents.repeats(), parents.engine()],
        help="dataset examples: each channel's strongest images in a folder, into an index the app shows",
        description="Runs every image below FOLDER through the network and keeps, for every channel of every "
        "block, the K images with the highest channel maximum and where it lies. Under torchrun "
        "(--nproc_per_node=N) the processes share the images and write one identical index.",
    )
    index.add_argument("folder", metavar="FOLDER")
    index.add_argument("--out", required=True, metavar="INDEX_DIR", help="the index folder (extended if it exists)")
    index.add_argument(
        "--classes",
        metavar="folders|FILE.csv",
        help="each image's class: folders (each sub-folder of FOLDER a class) or a CSV of path,label rows",
    )
    index.add_argument(
        "--atlas",
        nargs="+",
        metavar="BLOCK",
        help="blocks to keep atlas vectors of (default: one 3/5 of the way in and the last; none: none)",
    )
    index.add_argument(
        "--atlas-per-image", type=parents.whole_number(1, 64), default=4, metavar="N", help="vectors an image (4)"
    )
    index.add_argument("--top", type=int, default=9, metavar="K", help="images kept per channel (default 9)")
    index.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per forward (default 32)")
    index.add_argument("--workers", type=int, default=2, metavar="N", help="decoding processes (default 2; 0: none)")
    index.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 where it is fast"
    )
    index.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the forward (auto: on GPUs, plain kernels where compiling fails; on: an error then)",
    )
    index.set_defaults(run=_index)
