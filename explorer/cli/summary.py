"""``irv2-explorer summary``: the torchinfo summary, component by component."""

from __future__ import annotations

import argparse

from explorer.cli import parents
from explorer.nets import make_config


def _summary(args: argparse.Namespace) -> int:
    from explorer.analysis.summary import format_summary, summarize

    print(format_summary(summarize(make_config(args.variant, **parents.overrides(args))), depth=args.depth))
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    summary = commands.add_parser(
        "summary", parents=[parents.network(), parents.repeats()], help="the torchinfo summary, component by component"
    )
    summary.add_argument(
        "--depth",
        type=parents.whole_number(0),
        default=1,
        help="module levels to list in each component, from 0 (default 1)",
    )
    summary.set_defaults(run=_summary)
