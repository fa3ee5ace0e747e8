"""The options several commands share, declared once (argparse parent parsers)."""

from __future__ import annotations

import argparse

from explorer.nets import VARIANTS


def network() -> argparse.ArgumentParser:
    """``--variant``: which network's table."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--variant", choices=list(VARIANTS), default="released")
    return parent


def repeats() -> argparse.ArgumentParser:
    """``--repeats A B C``: the blocks of each type, and :func:`overrides` to pass them on."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    return parent


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
