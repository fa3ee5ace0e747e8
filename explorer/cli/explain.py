"""``irv2-explorer explain``: why it said that, attribution maps (Captum) and their sanity check."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from explorer.cli import parents
from explorer.cli.engines import load_engine

if TYPE_CHECKING:
    from explorer.explain import Faithfulness, MetricSettings


def _explain(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from explorer.drawing.heatmaps import colourise, overlay, png_bytes
    from explorer.explain import (
        METHODS,
        Explainer,
        MetricSettings,
        Settings,
        check_metrics,
        check_request,
        display,
        ranking,
        thumbnail,
    )
    from explorer.runtime.images import load_image

    methods = args.method or list(METHODS)
    metrics = check_metrics(args.metrics or [])  # refused before the network is loaded
    measured = MetricSettings(steps=args.metric_steps, baseline=args.baseline)
    measured.check()
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
    scores = {}
    if metrics:
        found_scores = Explainer(engine).faithfulness(loaded.image, attributions, metrics, measured)
        scores = {f.method: f for f in found_scores}
        ranked = ranking(found_scores, metrics)
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
        document: dict[str, object] = {
            "image": args.image,
            "methods": [
                {**a.to_json(), **({"metrics": _scores_json(scores[a.method], measured)} if metrics else {})}
                for a in attributions
            ],
        }
        if metrics:
            document["ranking"] = ranked
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
        if metrics:
            print(f"faithfulness ({measured.steps} steps, {measured.baseline} baseline; rank 1 the most faithful):")
            for row in ranked:
                values = ", ".join(f"{m} {scores[row['method']].value(m):.4g} (#{r})" for m, r in row["ranks"].items())
                print(f"  {row['method']:<22} {values}")
    return 0


def _scores_json(found: Faithfulness, settings: MetricSettings) -> dict[str, object]:
    return {**settings.to_json(), **found.scores, "curves": {k: list(v) for k, v in found.curves.items()}}


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
    explain.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="faithfulness of each map: deletion, insertion, road, infidelity (lower is better but for insertion)",
    )
    explain.add_argument(
        "--metric-steps", type=parents.whole_number(1, 1000), default=50, help="deletion and insertion steps (50)"
    )
    explain.add_argument(
        "--baseline", choices=("black", "mean", "blur"), default="blur", help="what deleted pixels become (blur)"
    )
    explain.add_argument("--format", choices=("table", "json"), default="table")
    explain.add_argument("--out", help="write <method>.png (over the image) and <method>.npy (the raw map) here")
    explain.set_defaults(run=_explain)
