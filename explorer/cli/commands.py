"""The explorer's command line, over the library the app uses. Installed as irv2-explorer; also python -m explorer.

  irv2-explorer app [--port N] [--address HOST]            serve the web app, as make run does
  irv2-explorer counts [--variant V] [--format table|json|csv] [--repeats A B C]
  irv2-explorer claims [--format table|json]
  irv2-explorer summary [--variant V] [--depth N] [--repeats A B C]
  irv2-explorer graph [--variant V] [--level overview|expanded] [--block NAME] [-o FILE]
  irv2-explorer infer IMAGE... [--variant V] [--weights auto|random|hub[:TAG]|FILE] [--inside BLOCK] [--format json]
                     [--out DIR]
  irv2-explorer explain IMAGE [--method M ...] [--block NAME] [--class K] [--sanity] [--format json] [--out DIR]
  irv2-explorer weights fetch [TAG] | weights list [--offline] | weights check FILE

Each command's --help says more.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from explorer.nets import VARIANTS, make_config

if TYPE_CHECKING:
    from explorer.runtime import Engine, InferenceResult
    from explorer.runtime.inside import InsideMaps


def _summary(args: argparse.Namespace) -> int:
    from explorer.analysis.summary import format_summary, summarize

    print(format_summary(summarize(make_config(args.variant, **_overrides(args))), depth=args.depth))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {"repeats": tuple(args.repeats)} if args.repeats else {}


def _counts(args: argparse.Namespace) -> int:
    import json

    from explorer.analysis.counting import count_layers
    from explorer.analysis.report import format_counts, to_csv

    counts = count_layers(make_config(args.variant, **_overrides(args)))
    if args.format == "json":
        print(json.dumps(counts.to_json(), indent=2))
    elif args.format == "csv":
        print(to_csv(counts), end="")
    else:
        print(format_counts(counts))
    return 0


def _claims(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from explorer.analysis.claims import check_claims
    from explorer.analysis.counting import count_layers
    from explorer.analysis.reconciliation import reconcile

    counts = {variant: count_layers(make_config(variant)) for variant in VARIANTS}
    figures = reconcile(list(counts.values()))
    claims = check_claims(counts)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "published_figures": [
                        {
                            "figure": f.figure.says,
                            "source": f.figure.source,
                            "reproduced_by": [dataclasses.asdict(c) for c in f.reproduced_by],
                            "nearest": [dataclasses.asdict(c) for c in f.nearest],
                            "explanation": f.explanation,
                        }
                        for f in figures
                    ],
                    "claims": [dataclasses.asdict(c) for c in claims],
                },
                indent=2,
            )
        )
        return 0
    print("Published figures")
    for f in figures:
        print(f"- {f.figure.says} ({f.figure.source}): {f.explanation}")
    print("\nClaims from the source texts")
    for claim in claims:
        print(f"- [{claim.source}] {claim.claim}")
        for v in claim.verdicts:
            print(f"    {v.variant:<9} {v.verdict:<12} {v.evidence}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from explorer.drawing.graph import block_graph, network_graph, render, trace_network

    fmt = args.format or (args.output.rsplit(".", 1)[-1].lower() if args.output and "." in args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise ValueError(f"cannot tell the format from {args.output!r}; give --format dot, svg or png")
    if fmt == "png" and not args.output:
        raise ValueError("PNG is binary: give -o FILE")
    traced = trace_network(make_config(args.variant, **_overrides(args)))
    if args.block:
        graph = block_graph(traced, args.block, direction=args.direction or "BT")
    else:
        graph = network_graph(traced, args.level, direction=args.direction or "TB")
    data = render(graph, fmt)
    if args.output:
        with open(args.output, "wb") as file:
            file.write(data)
    else:
        sys.stdout.write(data.decode())
    return 0


def resolve_weights(value: str, variant: str = "released") -> str:
    """``--weights`` as a weights key or a file path: auto is the network's cached ImageNet weights, else random
    (never a download); plain ``hub`` its ImageNet weights on the Hub."""
    from explorer.nets.weights import AUTO, RANDOM, cached_hub_weights, hub_tags_for, parse_weights_key

    tags = hub_tags_for(variant)
    if value == AUTO:
        return f"hub:{tags[0]}" if tags and cached_hub_weights(tags[0]) is not None else RANDOM
    if value == "hub" and tags:
        return f"hub:{tags[0]}"
    if value in (RANDOM, "hub") or value.startswith("hub:"):
        return parse_weights_key(value)
    return value  # a file's path


def load_engine(weights: str, device: str, top_k: int = 8, variant: str = "released") -> Engine:
    """An inference engine with the weights the user named (:func:`resolve_weights`)."""
    from explorer.nets.weights import load_weights, load_weights_file
    from explorer.runtime import Engine

    config = make_config(variant)
    key = resolve_weights(weights, variant)
    if key == "random" or key.startswith("hub:"):
        model, info = load_weights(key, config, progress=_stderr_progress)
    else:
        model, info = load_weights_file(key, config)
    return Engine(model, info, device=device, top_k=top_k)


def _stderr_progress(done: int, total: int) -> None:
    if total and sys.stderr.isatty():
        end = "\n" if done >= total else ""
        print(f"\rdownloading weights: {done / total:6.1%} of {total / 1e6:.0f} MB", end=end, file=sys.stderr)


def _infer(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from explorer.drawing.heatmaps import colourise, png_bytes
    from explorer.runtime.images import ImageError, load_image

    engine = load_engine(args.weights, args.device, args.top_k, args.variant)
    if args.inside:  # refused before any image is read, with the names there are
        names = engine.source.block_names()
        if not any(args.inside == name or args.inside.startswith(name + ".") for name in names):
            raise ValueError(f"unknown block {args.inside!r} for --inside; blocks are: {', '.join(names)}")
    if engine.weights.random:
        print(
            "note: random weights, predictions are meaningless (fetch the trained ones once with "
            "`irv2-explorer weights fetch`, or give --weights hub or a file)",
            file=sys.stderr,
        )
    results, failed = [], 0
    for path in args.images:
        try:
            loaded = load_image(path)
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        result = engine.run(loaded.image, loaded.notes)
        inside = engine.inside(engine.block_inputs(loaded.image), args.inside) if args.inside else None
        results.append((path, result, inside))
        if args.out:
            folder = Path(args.out) if len(args.images) == 1 else Path(args.out) / Path(path).stem
            folder.mkdir(parents=True, exist_ok=True)
            for part in inside or ():
                (folder / f"{part.name}_mean.png").write_bytes(png_bytes(colourise(part.mean_map)))
            for block in result.blocks:
                (folder / f"{block.name}_mean.png").write_bytes(png_bytes(colourise(block.mean)))
                (folder / f"{block.name}_max.png").write_bytes(png_bytes(colourise(block.max)))
                for channel, channel_map in zip(block.top_channels, block.top_maps, strict=True):
                    (folder / f"{block.name}_channel{channel}.png").write_bytes(png_bytes(colourise(channel_map)))
    if args.format == "json":
        documents = [
            {"image": str(path), **result.to_json(), **({"inside": [p.to_json() for p in inside]} if inside else {})}
            for path, result, inside in results
        ]
        if documents:
            print(json.dumps(documents[0] if len(args.images) == 1 else documents, indent=2))
    else:
        for path, result, inside in results:
            print(_infer_table(path, result))
            if inside:
                print(_inside_table(args.inside, inside))
    return 1 if failed else 0


def _infer_table(path: str, result: InferenceResult) -> str:
    lines = [f"{path}: {result.weights} on {result.device}, {result.timings_ms['total']:.0f} ms"]
    lines += [f"  {p.probability:7.2%}  {p.label}" for p in result.top5]
    lines.append(f"  {'block':<14} {'shape (CxHxW)':>15} {'mean':>9} {'std':>9} {'zeros':>7} {'residual':>9}")
    for b in result.blocks:
        ratio = f"{b.stats.residual_ratio:9.3f}" if b.stats.residual_ratio is not None else f"{'':>9}"
        shape = "x".join(map(str, b.shape))
        lines.append(
            f"  {b.name:<14} {shape:>15} {b.stats.mean:9.4f} {b.stats.std:9.4f} {b.stats.zero_fraction:7.1%} {ratio}"
        )
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _inside_table(node: str, inside: tuple[InsideMaps, ...]) -> str:
    lines = [
        f"  inside {node}, in forward order:",
        f"  {'output':<28} {'kind':<16} {'shape (CxHxW)':>15} {'mean':>9} {'std':>9}",
    ]
    for p in inside:
        shape = "x".join(map(str, p.shape))
        lines.append(f"  {p.name:<28} {p.kind:<16} {shape:>15} {p.mean:9.4f} {p.std:9.4f}")
    return "\n".join(lines)


def _weights_fetch(args: argparse.Namespace) -> int:
    from explorer.nets.weights import cached_hub_weights, download_hub_weights

    cached = cached_hub_weights(args.tag)
    path = cached or download_hub_weights(args.tag, progress=_stderr_progress)
    state = "already in the Hugging Face cache" if cached else "downloaded"
    print(f"hub:{args.tag}: {state}, {path.stat().st_size / 1e6:.0f} MB, {path}")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from explorer.nets.weights import HUB_REPOS, WeightsError, cached_hub_weights, hub_file_size, local_weight_files

    def hub_row(tag: str) -> dict[str, object]:
        cached = cached_hub_weights(tag)
        row: dict[str, object] = {"weights": f"hub:{tag}", "source": HUB_REPOS[tag], "cached": cached is not None}
        if cached is not None:
            return row | {"path": str(cached), "bytes": cached.stat().st_size}
        if not args.offline:
            try:
                row["bytes"] = hub_file_size(tag)
            except WeightsError as error:
                row["error"] = str(error).split(" and ")[0]
        return row

    with ThreadPoolExecutor() as pool:  # the Hub is asked about every file at once: seconds at worst
        rows = list(pool.map(hub_row, HUB_REPOS))
    rows += [
        {"weights": f"file:{p.name}", "source": str(p), "cached": True, "path": str(p), "bytes": p.stat().st_size}
        for p in local_weight_files()
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        size = f"{row['bytes'] / 1e6:.0f} MB" if "bytes" in row else "?"
        if row["cached"]:
            where = f"at {row['path']}"
        else:
            where = f"not downloaded ({row.get('error', 'irv2-explorer weights fetch ' + str(row['weights'])[4:])})"
        print(f"{row['weights']:<22} {size:>7}  {row['source']}: {where}")
    return 0


def _weights_check(args: argparse.Namespace) -> int:
    from explorer.nets.weights import WeightsError, load_weights_file

    config = make_config(args.variant)
    try:
        _, info = load_weights_file(args.file, config)
    except WeightsError as error:
        print(f"{args.file} does not fit the {config.variant} network:", file=sys.stderr)
        for problem in error.problems or [str(error)]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{args.file} fits the {config.variant} network" + "".join(f"; {note}" for note in info.notes))
    return 0


def _app(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "ui" / "serve" / "app.py"
    options = ["--server.port", str(args.port)] + (["--server.address", args.address] if args.address else [])
    # This process becomes Streamlit's server (only the UI imports streamlit; the CLI hands over to it).
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(script), *options])


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


def _program() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m explorer" if name in ("", "__main__.py", "-m") else name


def _explain(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from explorer.drawing.heatmaps import colourise, overlay, png_bytes
    from explorer.explain import METHODS, Explainer, Settings, check_request, display, thumbnail
    from explorer.runtime.images import load_image

    methods = args.method or list(METHODS)
    engine = load_engine(args.weights, args.device, 8, args.variant)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program(), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    app = commands.add_parser("app", help="serve the web app (as make run does)")
    app.add_argument("--port", type=_port, default=8501, help="default 8501")
    app.add_argument("--address", help="the address to listen on (default: every interface)")
    app.set_defaults(run=_app)

    summary = commands.add_parser("summary", help="the torchinfo summary, component by component")
    summary.add_argument("--variant", choices=list(VARIANTS), default="released")
    summary.add_argument("--depth", type=int, default=1, help="module levels to list in each component (default 1)")
    summary.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    summary.set_defaults(run=_summary)

    counts = commands.add_parser("counts", help="layer counts under every convention, component by component")
    counts.add_argument("--variant", choices=list(VARIANTS), default="released")
    counts.add_argument("--format", choices=("table", "json", "csv"), default="table")
    counts.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    counts.set_defaults(run=_counts)

    claims = commands.add_parser("claims", help="published figures and the source texts' claims, checked")
    claims.add_argument("--format", choices=("table", "json"), default="table")
    claims.set_defaults(run=_claims)

    graph = commands.add_parser("graph", help="the block graph, from the whole network down to one block")
    graph.add_argument("--variant", choices=list(VARIANTS), default="released")
    graph.add_argument("--level", choices=("overview", "expanded"), default="overview")
    graph.add_argument("--block", help="draw one block's inside, e.g. repeat_1.0 or mixed_6a")
    graph.add_argument("--format", choices=("dot", "svg", "png"), help="default: from -o's suffix, else dot")
    graph.add_argument("--direction", choices=("TB", "LR", "BT"), help="default TB, BT for a block (as the paper)")
    graph.add_argument("--repeats", type=int, nargs=3, metavar=("A", "B", "C"), help="blocks of each type")
    graph.add_argument("-o", "--output", help="write to FILE instead of standard output")
    graph.set_defaults(run=_graph)

    infer = commands.add_parser("infer", help="top-5 and every block's activations for images")
    infer.add_argument("images", nargs="+", metavar="IMAGE")
    infer.add_argument(
        "--weights",
        default="auto",
        help="auto (default: tf_in1k if `weights fetch` has cached it, else random; never downloads), random, "
        "hub (tf_in1k, downloaded if need be), hub:tf_ens_adv_in1k, or a .safetensors/.pth file",
    )
    infer.add_argument("--variant", choices=list(VARIANTS), default="released")
    infer.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    infer.add_argument("--format", choices=("table", "json"), default="table")
    infer.add_argument("--out", help="write each block's maps as PNG files into this folder")
    infer.add_argument("--top-k", type=int, default=8, help="most active channels kept per block (default 8)")
    infer.add_argument(
        "--inside",
        metavar="BLOCK",
        help="also every output inside this block (repeat_1.0, mixed_6a, block8, ...) or unit (repeat_1.0.branch1.1)",
    )
    infer.set_defaults(run=_infer)

    explain = commands.add_parser("explain", help="why it said that: attribution maps (Captum) and their sanity check")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--weights", default="auto", help="as for infer")
    explain.add_argument("--variant", choices=list(VARIANTS), default="released")
    explain.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
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

    weights = commands.add_parser("weights", help="the trained weights: fetch, list, check")
    what = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = what.add_parser("fetch", help="download weights into the Hugging Face cache, with a progress bar")
    fetch.add_argument("tag", nargs="?", default="tf_in1k", help="tf_in1k (default) or tf_ens_adv_in1k")
    fetch.set_defaults(run=_weights_fetch)
    listing = what.add_parser("list", help="the weights there are, which are cached or in the weights folder, sizes")
    listing.add_argument("--offline", action="store_true", help="do not ask the Hub the sizes of files not downloaded")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(run=_weights_list)
    check = what.add_parser("check", help="does a weights file fit the network? (the report the app gives)")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--variant", choices=list(VARIANTS), default="released")
    check.set_defaults(run=_weights_check)
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

