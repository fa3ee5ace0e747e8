"""``irv2-explorer counts``: layer counts under every convention, component by component."""

from __future__ import annotations

import argparse

from explorer.cli import parents
from explorer.nets import make_config


def _counts(args: argparse.Namespace) -> int:
    import json

    from explorer.analysis.counting import count_layers
    from explorer.analysis.report import format_counts, to_csv

    counts = count_layers(make_config(args.variant, **parents.overrides(args)))
    if args.format == "json":
        print(json.dumps(counts.to_json(), indent=2))
    elif args.format == "csv":
        print(to_csv(counts), end="")
    else:
        print(format_counts(counts))
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    counts = commands.add_parser(
        "counts",
        parents=[parents.network(), parents.repeats()],
        help="layer counts under every convention, component by component",
    )
    counts.add_argument("--format", choices=("table", "json", "csv"), default="table")
    counts.set_defaults(run=_counts)
