"""The explorer's command line, over the library the app uses. Installed as irv2-explorer; also python -m explorer.

  irv2-explorer app [--port N] [--address HOST]            serve the web app, as make run does
  irv2-explorer class [--replicas N] [--port N]            N app processes behind nginx, Redis for rooms (make class)
  irv2-explorer counts [--variant V] [--format table|json|csv] [--repeats A B C]
  irv2-explorer claims [--format table|json]
  irv2-explorer summary [--variant V] [--depth N] [--repeats A B C]
  irv2-explorer graph [--variant V] [--level overview|expanded] [--block NAME] [-o FILE]
  irv2-explorer infer IMAGE... [--variant V] [--weights auto|random|hub[:TAG]|FILE] [--inside BLOCK] [--format json]
                     [--out DIR]
  irv2-explorer explain IMAGE [--method M ...] [--block NAME] [--class K] [--sanity] [--metrics M ...]
                     [--format json] [--out DIR]
  irv2-explorer index FOLDER --out INDEX_DIR [--top K] [--weights W] [--classes folders|FILE.csv]
                     [--atlas BLOCK...|none] (also under torchrun --nproc_per_node=N -m explorer index ...)
  irv2-explorer classes INDEX_DIR --block B (--channel C | --class NAME) [--top K] [--by labels|predicted]
  irv2-explorer atlas INDEX_DIR --block B [--grid N] [--steps N] [--seed S] --out DIR
  irv2-explorer tcav --concept DIR... [--random DIR] --class K --images DIR --blocks B... [--runs N] [--format json]
  irv2-explorer concept-examples --out DIR            stripes, dots and random images to try tcav with
  irv2-explorer visualize --block B --channel C [--objective channel|neuron|class] [--steps N] [--size PX] --out F.png
  irv2-explorer circuit --block B --channel C [--index DIR | IMAGE...] [--top K] [--onward] [--format json]
                     [--out DIR]
  irv2-explorer export [--variant V] [--weights W] [--format onnx|pt2] -o FILE
  irv2-explorer weights fetch [TAG] | weights list [--offline] | weights check FILE

Each command's --help says more.
"""

from __future__ import annotations

import argparse
import os
import sys

from explorer.cli import (
    app,
    atlas,
    circuit,
    claims,
    classes,
    counts,
    explain,
    export,
    graph,
    index,
    infer,
    summary,
    tcav,
    visualize,
    weights,
)

#: The commands in the order --help lists them.
COMMANDS = (
    app,
    summary,
    counts,
    claims,
    graph,
    infer,
    explain,
    index,
    classes,
    atlas,
    tcav,
    visualize,
    circuit,
    export,
    weights,
)


def _program() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m explorer" if name in ("", "__main__.py", "-m") else name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program(), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader (head, less) left early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the interpreter's final flush quiet)
        return 0
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
        return 2
