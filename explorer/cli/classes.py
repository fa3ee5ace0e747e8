"""``irv2-explorer classes``: which classes a channel serves, or which channels a class relies on, from an index."""

from __future__ import annotations

import argparse
import json

from explorer.cli import parents


def _classes(args: argparse.Namespace) -> int:
    from explorer.channels.index.reader import ChannelIndex
    from explorer.concepts.classes import ClassTable

    index = ChannelIndex(args.index)
    table = ClassTable(index, args.by)
    if args.channel is not None:
        found = table.classes_of(args.block, args.channel, args.top)
        result = {"block": args.block, "channel": args.channel, "classes": [row.to_json() for row in found]}
        lines = [f"{row.name}: {row.mean:.4f} over {row.count} images" for row in found]
        title = f"{args.block} channel {args.channel}: its top {len(found)} classes by mean maximum ({args.by})"
    else:
        found = table.channels_of(args.block, args.cls, args.top)
        result = {"block": args.block, "class": args.cls, "channels": [row.to_json() for row in found]}
        lines = [f"channel {row.channel}: {row.mean:.4f}" for row in found]
        count = table.count_of(args.cls)
        title = f"{args.cls} ({count} images, {args.by}): its top {len(found)} channels of {args.block} by mean maximum"
    if args.format == "json":
        print(json.dumps({**result, "classes_from": args.by}, indent=2))
    else:
        print(title)
        print("\n".join(f"  {line}" for line in lines))
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    classes = commands.add_parser(
        "classes",
        help="a channel's classes or a class's channels, from an index (built with --classes, or by predictions)",
        description="Reads an index's class table: the mean over a class's images of a channel's maximum. With "
        "--channel, the classes that raise the channel most; with --class, the channels a class raises most.",
    )
    classes.add_argument("index", metavar="INDEX_DIR")
    classes.add_argument("--block", required=True)
    which = classes.add_mutually_exclusive_group(required=True)
    which.add_argument("--channel", type=parents.whole_number(0), metavar="C")
    which.add_argument("--class", dest="cls", metavar="NAME", help="a class name, as the labels spell it")
    classes.add_argument("--top", type=parents.whole_number(1), default=10, metavar="K", help="rows (default 10)")
    classes.add_argument(
        "--by",
        choices=("labels", "predicted"),
        default="labels",
        help="labels: the folder's classes (default); predicted: the class the network puts first for each image",
    )
    classes.add_argument("--format", choices=("table", "json"), default="table")
    classes.set_defaults(run=_classes)
