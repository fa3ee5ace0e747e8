"""``irv2-explorer tcav``: does the network use a concept for a class (TCAV, captum.concept); and
``irv2-explorer concept-examples``: example concept folders made here (stripes, dots, random)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from explorer.cli import parents
from explorer.cli.engines import load_engine

if TYPE_CHECKING:
    from PIL import Image

    from explorer.runtime import Engine


def folder_images(folder: str, limit: int, seed: int) -> list[Image.Image]:
    """Up to ``limit`` images of a folder (drawn by the seed when it holds more)."""
    from pathlib import Path

    from explorer.channels.index.folder import list_files
    from explorer.concepts.concept_sets import read_images

    images, skipped = read_images([Path(folder, name) for name in list_files(folder)], limit, seed)
    if skipped:
        print(f"note: {folder}: {skipped} files are not images we can read, passed over", file=sys.stderr)
    if not images:
        raise ValueError(f"{folder} holds no image we can read")
    return images


def _tcav(args: argparse.Namespace) -> int:
    from explorer.concepts.concept_sets import run_tcav
    from explorer.concepts.examples import made
    from explorer.concepts.tcav import MIN_RUNS

    if args.runs < MIN_RUNS:
        raise ValueError(f"--runs takes at least {MIN_RUNS} (the t-test's random sets), not {args.runs}")
    names = [a.rstrip("/").split("/")[-1] for a in args.concept]
    if len(set(names)) != len(names):
        raise ValueError("two concept folders have one name: a concept is named by its folder")
    engine = load_engine(args.weights, args.device, 8, args.variant, args.labels)
    class_index = _class_index(engine, args.cls)
    images = folder_images(args.images, args.per_set, args.seed)
    concepts = {n: folder_images(f, args.per_set, args.seed) for n, f in zip(names, args.concept, strict=True)}
    pool = folder_images(args.random, 10_000, args.seed) if args.random else made("random", 2 * args.per_set, args.seed)
    found = run_tcav(engine, args.blocks, class_index, images, concepts, pool, args.runs, args.per_set, args.seed)
    label = engine.label(class_index)
    if args.format == "json":
        document = {
            "class": label,
            "class_index": class_index,
            "images": len(images),
            "runs": args.runs,
            "blocks": args.blocks,
            "results": [f.to_json() for f in found],
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"TCAV for class {class_index} ({label}), {len(images)} images, {args.runs} random sets:")
        for f in found:
            mark = "significant" if f.significant else "not significant"
            print(
                f"  {f.concept:<16} {f.block:<14} score {f.score:.2f}  p {f.p_value:.3g}  "
                f"CAV accuracy {f.accuracy:.2f} (p {f.separation_p:.3g})  {mark}"
            )
    return 0


def _class_index(engine: Engine, given: str) -> int:
    labels = engine.labels or ()
    if given.isdigit() and int(given) < engine.config.num_classes:
        return int(given)
    if given in labels:
        return list(labels).index(given)
    raise ValueError(f"--class {given!r}: neither a class number below {engine.config.num_classes} nor a class name")


def _examples(args: argparse.Namespace) -> int:
    from explorer.concepts.examples import write_examples

    made = write_examples(args.out, args.count, args.seed)
    print(f"{args.out}: {', '.join(made)}, {args.count} images each")
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    tcav = commands.add_parser(
        "tcav",
        parents=[parents.network(), parents.engine()],
        help="does the network use a concept for a class? TCAV scores with significance",
    )
    tcav.add_argument("--concept", nargs="+", required=True, metavar="DIR", help="a folder of images per concept")
    tcav.add_argument("--random", metavar="DIR", help="counter-examples (default: random images made here)")
    tcav.add_argument("--class", dest="cls", required=True, metavar="K", help="the class: its number or name")
    tcav.add_argument("--images", required=True, metavar="DIR", help="examples of the class")
    tcav.add_argument("--blocks", nargs="+", required=True, metavar="B", help="the blocks to test at")
    tcav.add_argument("--runs", type=parents.whole_number(1, 100), default=10, help="random sets (10, the least)")
    tcav.add_argument("--per-set", type=parents.whole_number(10, 1000), default=50, help="images a set (50)")
    tcav.add_argument("--seed", type=int, default=0)
    tcav.add_argument("--format", choices=("table", "json"), default="table")
    tcav.set_defaults(run=_tcav)
    examples = commands.add_parser("concept-examples", help="example concept folders to try tcav with (no download)")
    examples.add_argument("--out", required=True, help="writes OUT/stripes, OUT/dots and OUT/random")
    examples.add_argument("--count", type=parents.whole_number(10, 1000), default=50, help="images a folder (50)")
    examples.add_argument("--seed", type=int, default=0)
    examples.set_defaults(run=_examples)
