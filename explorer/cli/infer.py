"""``irv2-explorer infer``: top-5 and every block's activations for images."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from explorer.cli import parents
from explorer.cli.engines import load_engine
from explorer.nets import is_within

if TYPE_CHECKING:
    from explorer.runtime import InferenceResult
    from explorer.runtime.inside import InsideMaps


def _infer(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from explorer.drawing.heatmaps import colourise, png_bytes
    from explorer.runtime.images import ImageError, load_image

    engine = load_engine(args.weights, args.device, args.top_k, args.variant, args.labels)
    if args.inside:  # refused before any image is read, with the names there are
        names = engine.source.block_names()
        if not any(is_within(args.inside, name) for name in names):
            raise ValueError(f"unknown block {args.inside!r} for --inside; blocks are: {', '.join(names)}")
    if engine.weights.random:
        print(
            "note: random weights, predictions are meaningless (fetch the trained ones once with "
            "`irv2-explorer weights fetch`, or give --weights hub or a file)",
            file=sys.stderr,
        )
    results, failed = [], 0
    for path in args.images:
        try:
            loaded = load_image(path)
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        result = engine.run(loaded.image, loaded.notes)
        inside = engine.inside(engine.block_inputs(loaded.image), args.inside) if args.inside else None
        results.append((path, result, inside))
        if args.out:
            folder = Path(args.out) if len(args.images) == 1 else Path(args.out) / Path(path).stem
            folder.mkdir(parents=True, exist_ok=True)
            for part in inside or ():
                (folder / f"{part.name}_mean.png").write_bytes(png_bytes(colourise(part.mean_map)))
            for block in result.blocks:
                (folder / f"{block.name}_mean.png").write_bytes(png_bytes(colourise(block.mean)))
                (folder / f"{block.name}_max.png").write_bytes(png_bytes(colourise(block.max)))
                for channel, channel_map in zip(block.top_channels, block.top_maps, strict=True):
                    (folder / f"{block.name}_channel{channel}.png").write_bytes(png_bytes(colourise(channel_map)))
    if args.format == "json":
        documents = [
            {"image": str(path), **result.to_json(), **({"inside": [p.to_json() for p in inside]} if inside else {})}
            for path, result, inside in results
        ]
        if documents:
            print(json.dumps(documents[0] if len(args.images) == 1 else documents, indent=2))
    else:
        for path, result, inside in results:
            print(_infer_table(path, result))
            if inside:
                print(_inside_table(args.inside, inside))
    return 1 if failed else 0


def _infer_table(path: str, result: InferenceResult) -> str:
    lines = [f"{path}: {result.weights} on {result.device}, {result.timings_ms['total']:.0f} ms"]
    lines += [f"  {p.probability:7.2%}  {p.label}" for p in result.top5]
    lines.append(f"  {'block':<14} {'shape (CxHxW)':>15} {'mean':>9} {'std':>9} {'zeros':>7} {'residual':>9}")
    for b in result.blocks:
        ratio = f"{b.stats.residual_ratio:9.3f}" if b.stats.residual_ratio is not None else f"{'':>9}"
        shape = "x".join(map(str, b.shape))
        lines.append(
            f"  {b.name:<14} {shape:>15} {b.stats.mean:9.4f} {b.stats.std:9.4f} {b.stats.zero_fraction:7.1%} {ratio}"
        )
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _inside_table(node: str, inside: tuple[InsideMaps, ...]) -> str:
    lines = [
        f"  inside {node}, in forward order:",
        f"  {'output':<28} {'kind':<16} {'shape (CxHxW)':>15} {'mean':>9} {'std':>9}",
    ]
    for p in inside:
        shape = "x".join(map(str, p.shape))
        lines.append(f"  {p.name:<28} {p.kind:<16} {shape:>15} {p.mean:9.4f} {p.std:9.4f}")
    return "\n".join(lines)


def add_to(commands: argparse._SubParsersAction) -> None:
    infer = commands.add_parser(
        "infer", parents=[parents.network(), parents.engine()], help="top-5 and every block's activations for images"
    )
    infer.add_argument("images", nargs="+", metavar="IMAGE")
    infer.add_argument("--format", choices=("table", "json"), default="table")
    infer.add_argument("--out", help="write each block's maps as PNG files into this folder")
    infer.add_argument("--top-k", type=int, default=8, help="most active channels kept per block (default 8)")
    infer.add_argument(
        "--inside",
        metavar="BLOCK",
        help="also every output inside this block (repeat_1.0, mixed_6a, block8, ...) or unit (repeat_1.0.branch1.1)",
    )
    infer.set_defaults(run=_infer)
