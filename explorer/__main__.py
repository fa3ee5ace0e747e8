"""Command line: ``python -m explorer summary [--variant V] [--depth N]``."""

from __future__ import annotations

import argparse
import sys

from explorer.model import VARIANTS, make_config


def _summary(args: argparse.Namespace) -> int:
    from explorer.summary import format_summary, summarize

    overrides = {"repeats": tuple(args.repeats)} if args.repeats else {}
    print(format_summary(summarize(make_config(args.variant, **overrides)), depth=args.depth))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    summary = commands.add_parser("summary", help="the torchinfo summary, component by component")
    summary.add_argument("--variant", choices=list(VARIANTS), default="released")
    summary.add_argument("--depth", type=int, default=1, help="module levels to list in each component (default 1)")
    summary.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    summary.set_defaults(run=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
