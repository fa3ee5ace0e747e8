"""``irv2-explorer atlas``: the activation atlas of a block, from an index, as atlas.png and atlas.json."""

from __future__ import annotations

import argparse
import json
import sys

from explorer.cli import parents


def _atlas(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from explorer.channels.index.reader import ChannelIndex
    from explorer.channels.index.store import written_whole
    from explorer.concepts.atlas import layout
    from explorer.concepts.drawn import atlas_picture, atlas_settings, cell_pictures, png
    from explorer.concepts.source import network_of
    from explorer.runtime.device import pick_device

    started = time.perf_counter()
    index = ChannelIndex(args.index)
    device, note = pick_device(args.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    model, info = network_of(index)  # refused before the layout's work when the weights have changed
    model = model.eval().requires_grad_(False).to(device)
    found = layout(index, args.block, args.grid, args.seed)
    print(
        f"laid out {found.points.shape[0]} vectors in {len(found.cells)} of {args.grid}x{args.grid} cells "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    settings = atlas_settings(device, args.steps, args.size, args.seed)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rfeature visualisation: {done / total:6.1%}", end="\n" if done >= total else "", file=sys.stderr)

    pictures = cell_pictures(model, found, device, settings, progress)
    picture = atlas_picture(found, pictures, args.tile)
    out = Path(args.out)
    with written_whole(out) as work:  # both files or neither; an earlier atlas stays until this one is whole
        (work / "atlas.png").write_bytes(png(picture))
        described = {
            **found.to_json(index),
            "steps": settings.steps,
            "size": settings.size,
            "tile": args.tile,
            "weights": info.source,
        }
        (work / "atlas.json").write_text(json.dumps(described, indent=1))
    print(
        f"{out}: atlas of {args.block}, {len(found.cells)} cells from {found.points.shape[0]} vectors, "
        f"{picture.width}x{picture.height} px, classes by {found.labels_from} ({info.source}, "
        f"{time.perf_counter() - started:.0f} s on {device.type})"
    )
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    atlas = commands.add_parser(
        "atlas",
        help="the activation atlas of a block, from an index: atlas.png and atlas.json",
        description="Lays out the atlas vectors an index kept of BLOCK with UMAP, cuts the plane into a grid "
        "and feature-visualises each cell's mean vector with the network and weights the index was built with.",
    )
    atlas.add_argument("index", metavar="INDEX_DIR")
    atlas.add_argument("--block", required=True, help="a block the index kept atlas vectors of")
    atlas.add_argument("--grid", type=parents.whole_number(1, 100), default=20, metavar="N", help="N x N cells")
    atlas.add_argument("--steps", type=parents.whole_number(1), help="optimisation steps (256 on a GPU, 96 on a CPU)")
    atlas.add_argument("--size", type=parents.whole_number(64), help="a cell's image (160 px on a GPU, 96 on a CPU)")
    atlas.add_argument("--tile", type=parents.whole_number(8), default=96, metavar="PX", help="a cell in the PNG")
    atlas.add_argument("--seed", type=int, default=0, help="the layout's and the pictures' seed")
    atlas.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    atlas.add_argument("--out", required=True, metavar="DIR", help="the folder for atlas.png and atlas.json")
    atlas.set_defaults(run=_atlas)
