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
    import torch

    from explorer.runtime import Engine


def folder_images(folder: str, engine: Engine, limit: int, seed: int) -> torch.Tensor:
    """Up to ``limit`` images of a folder (drawn by the seed when it holds more), normalised, as one tensor."""
    from pathlib import Path

    import numpy as np
    import torch

    from explorer.channels.index.folder import list_files
    from explorer.runtime.images import ImageError, load_image

    files = list_files(folder)
    if len(files) > limit:
        files = sorted(np.random.default_rng(seed).choice(files, limit, replace=False).tolist())
    tensors, skipped = [], 0
    for name in files:
        try:
            tensors.append(engine.prepare(load_image(Path(folder, name).read_bytes()).image)[1])
        except (ImageError, OSError):
            skipped += 1
    if skipped:
        print(f"note: {folder}: {skipped} files are not images we can read, passed over", file=sys.stderr)
    if not tensors:
        raise ValueError(f"{folder} holds no image we can read")
    return torch.cat(tensors)


def _tcav(args: argparse.Namespace) -> int:
    import torch

    from explorer.concepts.examples import random_image
    from explorer.concepts.tcav import MIN_RUNS, random_sets, tcav

    if args.runs < MIN_RUNS:
        raise ValueError(f"--runs takes at least {MIN_RUNS} (the t-test's random sets), not {args.runs}")
    names = [a.rstrip("/").split("/")[-1] for a in args.concept]
    if len(set(names)) != len(names):
        raise ValueError("two concept folders have one name: a concept is named by its folder")
    engine = load_engine(args.weights, args.device, 8, args.variant, args.labels)
    blocks = engine.source.block_names()
    for block in args.blocks:
        if block not in blocks:
            raise ValueError(f"unknown block {block!r}; blocks are: {', '.join(blocks)}")
    class_index = _class_index(engine, args.cls)
    device = engine.device
    images = folder_images(args.images, engine, args.per_set, args.seed).to(device)
    concepts = {
        n: folder_images(f, engine, args.per_set, args.seed).to(device)
        for n, f in zip(names, args.concept, strict=True)
    }
    if args.random:
        pool = folder_images(args.random, engine, 10_000, args.seed)
    else:
        import numpy as np

        rng = np.random.default_rng(args.seed)
        made = [random_image(rng, []) for _ in range(2 * args.per_set)]
        pool = torch.cat([engine.prepare(image)[1] for image in made])
    randoms = [r.to(device) for r in random_sets(pool, args.runs, args.per_set, args.seed)]
    with engine.private.shared() as model:  # Captum hooks its blocks: the engine's private copy, one caller at a time
        found = tcav(model, args.blocks, class_index, images, concepts, randoms)
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
            print(f"  {f.concept:<16} {f.block:<14} score {f.score:.2f}  p {f.p_value:.3g}  {mark}")
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
        help="does the network use a concept for a class? TCAV scores with significance (captum.concept)",
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
