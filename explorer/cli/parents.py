"""The options several commands share, declared once (argparse parent parsers)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from explorer.nets import MAX_BLOCKS, VARIANTS


def network() -> argparse.ArgumentParser:
    """``--variant``: which network's table."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--variant", choices=list(VARIANTS), default="released")
    return parent


def repeats() -> argparse.ArgumentParser:
    """``--repeats A B C``: the blocks of each type, and :func:`overrides` to pass them on."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--repeats",
        type=whole_number(1, MAX_BLOCKS),
        nargs=3,
        metavar=("A", "B", "C"),
        help=f"blocks of each type, 1 to {MAX_BLOCKS} (the app's range)",
    )
    return parent


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low`` .. ``high`` written in ASCII digits, else one line saying so."""
    wanted = f"a whole number from {low}" + (f" to {high}" if high is not None else "")

    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):  # int() would take "1_0" and other scripts' digits
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not {wanted}")
        return value

    return parse


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """The table entries the options replace (for :func:`explorer.nets.make_config`)."""
    return {"repeats": tuple(args.repeats)} if args.repeats else {}


WEIGHTS_HELP = (
    "auto (default: tf_in1k if `weights fetch` has cached it, else random; never downloads), random, "
    "hub (tf_in1k, downloaded if need be), hub:tf_ens_adv_in1k, or a .safetensors/.pth file"
)


def engine() -> argparse.ArgumentParser:
    """``--weights`` and ``--device``: what runs the images, and where."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--weights", default="auto", help=WEIGHTS_HELP)
    parent.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parent.add_argument(
        "--labels", metavar="FILE", help="class names for a fine-tuned head (labels.txt, one a line, or .json)"
    )
    return parent
