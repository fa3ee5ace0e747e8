"""Command line over the explorer's library.

python -m explorer summary [--variant V] [--depth N] [--repeats A B C]
python -m explorer counts  [--variant V] [--format table|json|csv] [--repeats A B C]
python -m explorer claims  [--format table|json]
"""

from __future__ import annotations

import argparse
import os
import sys

from explorer.model import VARIANTS, make_config


def _summary(args: argparse.Namespace) -> int:
    from explorer.summary import format_summary, summarize

    print(format_summary(summarize(make_config(args.variant, **_overrides(args))), depth=args.depth))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {"repeats": tuple(args.repeats)} if args.repeats else {}


def _counts(args: argparse.Namespace) -> int:
    import json

    from explorer.counting import count_layers, format_counts, to_csv

    counts = count_layers(make_config(args.variant, **_overrides(args)))
    if args.format == "json":
        print(json.dumps(counts.to_json(), indent=2))
    elif args.format == "csv":
        print(to_csv(counts), end="")
    else:
        print(format_counts(counts))
    return 0


def _claims(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from explorer.claims import check_claims
    from explorer.counting import count_layers, reconcile

    counts = {variant: count_layers(make_config(variant)) for variant in VARIANTS}
    figures = reconcile(list(counts.values()))
    claims = check_claims(counts)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "published_figures": [
                        {
                            "figure": f.figure.says,
                            "source": f.figure.source,
                            "reproduced_by": [dataclasses.asdict(c) for c in f.reproduced_by],
                            "nearest": [dataclasses.asdict(c) for c in f.nearest],
                            "explanation": f.explanation,
                        }
                        for f in figures
                    ],
                    "claims": [dataclasses.asdict(c) for c in claims],
                },
                indent=2,
            )
        )
        return 0
    print("Published figures")
    for f in figures:
        print(f"- {f.figure.says} ({f.figure.source}): {f.explanation}")
    print("\nClaims from the source texts")
    for claim in claims:
        print(f"- [{claim.source}] {claim.claim}")
        for v in claim.verdicts:
            print(f"    {v.variant:<9} {v.verdict:<12} {v.evidence}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from explorer.graph import block_graph, network_graph, render, trace_network

    fmt = args.format or (args.output.rsplit(".", 1)[-1].lower() if args.output and "." in args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise ValueError(f"cannot tell the format from {args.output!r}; give --format dot, svg or png")
    if fmt == "png" and not args.output:
        raise ValueError("PNG is binary: give -o FILE")
    traced = trace_network(make_config(args.variant, **_overrides(args)))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    summary = commands.add_parser("summary", help="the torchinfo summary, component by component")
    summary.add_argument("--variant", choices=list(VARIANTS), default="released")
    summary.add_argument("--depth", type=int, default=1, help="module levels to list in each component (default 1)")
    summary.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    summary.set_defaults(run=_summary)

    counts = commands.add_parser("counts", help="layer counts under every convention, component by component")
    counts.add_argument("--variant", choices=list(VARIANTS), default="released")
    counts.add_argument("--format", choices=("table", "json", "csv"), default="table")
    counts.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    counts.set_defaults(run=_counts)

    claims = commands.add_parser("claims", help="published figures and the source texts' claims, checked")
    claims.add_argument("--format", choices=("table", "json"), default="table")
    claims.set_defaults(run=_claims)

    graph = commands.add_parser("graph", help="the block graph, from the whole network down to one block")
    graph.add_argument("--variant", choices=list(VARIANTS), default="released")
    graph.add_argument("--level", choices=("overview", "expanded"), default="overview")
    graph.add_argument("--block", help="draw one block's inside, e.g. repeat_1.0 or mixed_6a")
    graph.add_argument("--format", choices=("dot", "svg", "png"), help="default: from -o's suffix, else dot")
    graph.add_argument("--direction", choices=("TB", "LR", "BT"), help="default TB, BT for a block (as the paper)")
    graph.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    graph.add_argument("-o", "--output", help="write to FILE instead of standard output")
    graph.set_defaults(run=_graph)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader (head, less) left early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the interpreter's final flush quiet)
        return 0
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
