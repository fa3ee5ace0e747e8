"""``irv2-explorer visualize``: feature visualisation, the image that excites a channel most."""

from __future__ import annotations

import argparse
import sys

from explorer.cli import parents
from explorer.cli.engines import load_model


def _visualize(args: argparse.Namespace) -> int:
    import json
    import os
    import tempfile
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from explorer.channels.features.visualise import Settings, check_target, visualise
    from explorer.drawing.examples import mosaic
    from explorer.drawing.heatmaps import png_bytes
    from explorer.runtime.device import pick_device

    if (args.steps is not None and args.steps < 1) or (args.size is not None and args.size < 64):
        raise ValueError("--steps takes a whole number from 1, --size from 64 pixels")
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out names a .png file, not {args.out!r}")
    device, note = pick_device(args.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    model, info = load_model(args.weights, args.variant, args.labels, **parents.overrides(args))
    model = model.eval().requires_grad_(False).to(device)
    node = args.block or ""
    check_target(model, args.objective, node, args.channel)  # refused before any work
    if info.random:
        print(
            "note: random weights: the images show the optimiser and the receptive fields, not learned features",
            file=sys.stderr,
        )
    defaults = Settings.for_device(device)
    settings = Settings(args.steps or defaults.steps, args.size or defaults.size, args.seed)  # None: the device's

    def progress(step: int, steps: int) -> None:
        if sys.stderr.isatty():
            print(f"\roptimising: step {step} of {steps}", end="\n" if step == steps else "", file=sys.stderr)

    result = visualise(model, args.objective, node, args.channel, settings, device, progress)
    images = [Image.fromarray(np.asarray(pixels)) for pixels in result.images]
    picture = images[0] if len(images) == 1 else mosaic(images, columns=min(len(images), 8))
    out = Path(args.out)
    handle, temporary = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", suffix=".png.tmp")
    with os.fdopen(handle, "wb") as file:  # written whole, then put in place
        file.write(png_bytes(picture))
    os.replace(temporary, out)
    if args.format == "json":
        print(json.dumps({**result.to_json(), "weights": info.source, "out": str(out)}, indent=2))
    else:
        for channel, value in zip(result.channels, result.final, strict=True):
            print(f"{node or 'class'} {channel}: {args.objective} {value:.4f}")
        print(f"{out}: {settings.steps} steps at {settings.size} px in {result.seconds:.1f} s ({info.source})")
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    visualize = commands.add_parser(
        "visualize",
        parents=[parents.network(), parents.repeats(), parents.engine()],
        help="feature visualisation: the image that excites a channel most",
    )
    visualize.add_argument("--block", help="a block (repeat_1.0) or a unit inside one (repeat_1.0.branch1.2)")
    visualize.add_argument("--channel", type=int, nargs="+", required=True, metavar="C", help="channel(s), or class")
    visualize.add_argument("--objective", choices=("channel", "neuron", "class"), default="channel")
    visualize.add_argument("--steps", type=int, help="optimisation steps (default: 512 on a GPU, 128 on a CPU)")
    visualize.add_argument("--size", type=int, help="image size in pixels (default: 224 on a GPU, 128 on a CPU)")
    visualize.add_argument("--seed", type=int, default=0)
    visualize.add_argument("--out", required=True, metavar="FILE.png")
    visualize.add_argument("--format", choices=("table", "json"), default="table")
    visualize.set_defaults(run=_visualize)
