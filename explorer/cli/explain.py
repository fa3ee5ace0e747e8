"""``irv2-explorer explain``: why it said that, attribution maps (Captum) and their sanity check."""

from __future__ import annotations

import argparse
import sys

from explorer.cli import parents
from explorer.cli.engines import load_engine


def _explain(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from explorer.drawing.heatmaps import colourise, overlay, png_bytes
    from explorer.explain import METHODS, Explainer, Settings, check_request, display, thumbnail
    from explorer.runtime.images import load_image

    methods = args.method or list(METHODS)
    engine = load_engine(args.weights, args.device, 8, args.variant, args.labels)
    for method in methods:  # refused before any work, with the names there are
        check_request(engine.source, method, args.block, args.class_index)
    loaded = load_image(args.image)
    settings = Settings(steps=args.steps, smooth=args.smooth, window=args.window, stride=args.stride)
    if engine.weights.random:
        print("note: random weights: the maps explain a network that knows nothing", file=sys.stderr)
    if args.sanity:
        found, sanity = Explainer(engine).sanity_check(loaded.image, methods, args.block, args.class_index, settings)
        attributions = [found[m] for m in methods]
    else:
        explainer = Explainer(engine)
        attributions = [explainer.explain(loaded.image, m, args.block, args.class_index, settings) for m in methods]
        sanity = None
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        crop, _ = engine.prepare(loaded.image)
        for found in attributions:
            np.save(folder / f"{found.method}.npy", found.heatmap.astype(np.float32))
            (folder / f"{found.method}.png").write_bytes(png_bytes(overlay(crop, display(found.heatmap))))
            if sanity is not None:  # the original map, then each step's, left to right
                maps = [thumbnail(found.heatmap), *(s.thumbnail for s in sanity[found.method])]
                strip = np.hstack([display(m) for m in maps])  # each map on its own scale, as the page shows them
                (folder / f"{found.method}-sanity.png").write_bytes(png_bytes(colourise(strip)))
    if args.format == "json":
        document: dict[str, object] = {"image": args.image, "methods": [a.to_json() for a in attributions]}
        if sanity is not None:
            document["sanity"] = {
                method: [{"randomised_from": s.randomised_from, "spearman": round(s.spearman, 4)} for s in steps]
                for method, steps in sanity.items()
            }
        print(json.dumps(document, indent=2))
    else:
        for found in attributions:
            where = f" at {found.block}" if found.block else ""
            print(f"{found.method:<22} class {found.class_index} ({found.label}){where}: {found.seconds:.2f} s")
        for method, steps in (sanity or {}).items():
            print(f"sanity, {method}: " + ", ".join(f"{s.randomised_from} {s.spearman:+.2f}" for s in steps))
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        parents=[parents.network(), parents.engine()],
        help="why it said that: attribution maps (Captum) and their sanity check",
    )
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument(
        "--method",
        nargs="+",
        metavar="METHOD",
        help="grad-cam, guided-grad-cam, integrated-gradients, occlusion, saliency (default: all)",
    )
    explain.add_argument("--block", help="the block for the CAM methods (default: the last one)")
    explain.add_argument("--class", dest="class_index", type=int, help="the class to explain (default: the top-1)")
    explain.add_argument("--sanity", action="store_true", help="also the cascading-randomisation sanity check")
    explain.add_argument("--steps", type=int, default=24, help="Integrated Gradients' steps (default 24)")
    explain.add_argument("--smooth", action="store_true", help="SmoothGrad over Integrated Gradients")
    explain.add_argument("--window", type=int, default=64, help="occlusion patch in pixels (default 64)")
    explain.add_argument("--stride", type=int, default=32, help="occlusion stride in pixels (default 32)")
    explain.add_argument("--format", choices=("table", "json"), default="table")
    explain.add_argument("--out", help="write <method>.png (over the image) and <method>.npy (the raw map) here")
    explain.set_defaults(run=_explain)
