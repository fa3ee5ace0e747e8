"""``irv2-explorer graph``: the block graph, from the whole network down to one block."""

from __future__ import annotations

import argparse
import sys

from explorer.cli import parents
from explorer.nets import make_config


def _graph(args: argparse.Namespace) -> int:
    from explorer.drawing.graph import block_graph, network_graph, render, trace_network

    fmt = args.format or (args.output.rsplit(".", 1)[-1].lower() if args.output and "." in args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise ValueError(f"cannot tell the format from {args.output!r}; give --format dot, svg or png")
    if fmt == "png" and not args.output:
        raise ValueError("PNG is binary: give -o FILE")
    traced = trace_network(make_config(args.variant, **parents.overrides(args)))
    if args.block:
        graph = block_graph(traced, args.block, direction=args.direction or "BT")
    else:
        graph = network_graph(traced, args.level, direction=args.direction or "TB")
    data = render(graph, fmt)
    if args.output:
        with open(args.output, "wb") as file:
            file.write(data)
    else:
        sys.stdout.write(data.decode())
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    graph = commands.add_parser(
        "graph",
        parents=[parents.network(), parents.repeats()],
        help="the block graph, from the whole network down to one block",
    )
    graph.add_argument("--level", choices=("overview", "expanded"), default="overview")
    graph.add_argument("--block", help="draw one block's inside, e.g. repeat_1.0 or mixed_6a")
    graph.add_argument("--format", choices=("dot", "svg", "png"), help="default: from -o's suffix, else dot")
    graph.add_argument("--direction", choices=("TB", "LR", "BT"), help="default TB, BT for a block (as the paper)")
    graph.add_argument("-o", "--output", help="write to FILE instead of standard output")
    graph.set_defaults(run=_graph)
