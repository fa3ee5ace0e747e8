"""``irv2-explorer weights fetch | list | check``: the trained weights."""

from __future__ import annotations

import argparse
import sys

from explorer.cli import parents
from explorer.cli.engines import stderr_progress
from explorer.nets import make_config


def _weights_fetch(args: argparse.Namespace) -> int:
    from explorer.nets.hub import cached_hub_weights, download_hub_weights

    cached = cached_hub_weights(args.tag)
    path = cached or download_hub_weights(args.tag, progress=stderr_progress)
    state = "already in the Hugging Face cache" if cached else "downloaded"
    print(f"hub:{args.tag}: {state}, {path.stat().st_size / 1e6:.0f} MB, {path}")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from explorer.nets.hub import HUB_REPOS, cached_hub_weights, hub_file_size
    from explorer.nets.weights import WeightsError, local_weight_files

    def hub_row(tag: str) -> dict[str, object]:
        cached = cached_hub_weights(tag)
        row: dict[str, object] = {"weights": f"hub:{tag}", "source": HUB_REPOS[tag], "cached": cached is not None}
        if cached is not None:
            return row | {"path": str(cached), "bytes": cached.stat().st_size}
        if not args.offline:
            try:
                row["bytes"] = hub_file_size(tag)
            except WeightsError as error:
                row["error"] = str(error).split(" and ")[0]
        return row

    with ThreadPoolExecutor() as pool:  # the Hub is asked about every file at once: seconds at worst
        rows = list(pool.map(hub_row, HUB_REPOS))
    rows += [
        {"weights": f"file:{p.name}", "source": str(p), "cached": True, "path": str(p), "bytes": p.stat().st_size}
        for p in local_weight_files()
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        size = f"{row['bytes'] / 1e6:.0f} MB" if "bytes" in row else "?"
        if row["cached"]:
            where = f"at {row['path']}"
        else:
            tag = str(row["weights"]).partition(":")[2]
            where = f"not downloaded ({row.get('error', f'irv2-explorer weights fetch {tag}')})"
        print(f"{row['weights']:<22} {size:>7}  {row['source']}: {where}")
    return 0


def _weights_check(args: argparse.Namespace) -> int:
    from explorer.nets.loading import load_file
    from explorer.nets.weights import WeightsError

    config = make_config(args.variant)
    try:
        model, info = load_file(args.file, config, args.labels)
    except WeightsError as error:
        print(f"{args.file} does not fit the {config.variant} network:", file=sys.stderr)
        for problem in error.problems or [str(error)]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{args.file} fits the {config.variant} network" + "".join(f"; {note}" for note in info.notes))
    names, classes = info.class_names, model.config.num_classes
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    else:
        shown = "ImageNet's" if classes == 1000 else "no names: class 0, class 1, ..."
    hidden = "".join(f" after a hidden layer of {width}" for width in model.config.head_hidden)
    print(f"head: {classes} classes ({shown}){hidden}" if classes else "head: none (a backbone: maps, no classes)")
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    weights = commands.add_parser("weights", help="the trained weights: fetch, list, check")
    what = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = what.add_parser("fetch", help="download weights into the Hugging Face cache, with a progress bar")
    fetch.add_argument("tag", nargs="?", default="tf_in1k", help="tf_in1k (default) or tf_ens_adv_in1k")
    fetch.set_defaults(run=_weights_fetch)
    listing = what.add_parser("list", help="the weights there are, which are cached or in the weights folder, sizes")
    listing.add_argument("--offline", action="store_true", help="do not ask the Hub the sizes of files not downloaded")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(run=_weights_list)
    check = what.add_parser(
        "check", parents=[parents.network()], help="does a weights file fit the network? (the report the app gives)"
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--labels", metavar="FILE", help="class names (labels.txt or .json) for a fine-tuned head")
    check.set_defaults(run=_weights_check)
