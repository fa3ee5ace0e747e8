"""``irv2-explorer circuit``: which channels of the block before build a channel, with the ablation check."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from explorer.cli import parents
from explorer.cli.engines import load_model

if TYPE_CHECKING:
    import torch

    from explorer.channels.index.reader import ChannelIndex
    from explorer.circuits.paths import Target
    from explorer.nets import InceptionNetwork
    from explorer.nets.weights import WeightsInfo


def _circuit(args: argparse.Namespace) -> int:
    import json

    from explorer.circuits import NotLinear, circuit, expanded_weights, onward, resolve
    from explorer.runtime.device import pick_device
    from explorer.runtime.labels import imagenet_labels

    if args.index and args.images:
        raise ValueError("give --index or images, not both")
    device, note = pick_device(args.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    model, info = load_model(args.weights, args.variant, args.labels, **parents.overrides(args))
    model = model.eval().requires_grad_(False).to(device)
    target, _ = resolve(model, args.block, args.channel)  # refused before any image is read
    index = _open_index(args.index, model, info) if args.index else None
    pixels, names, said = gather(args, model, target, index)  # bad input is said before any note
    if info.random:
        print("note: random weights: the circuit shows how the untrained network mixes channels", file=sys.stderr)
    if said:
        print(f"note: {said}", file=sys.stderr)
    found = circuit(
        model,
        pixels.to(device),
        target.node,
        target.channel,
        names=names,
        response=args.response,
        k=args.ablate,
        draws=args.draws,
        seed=args.seed,
    )
    report = found.to_json(args.top) | {"weights": info.source}
    shown = [c.channel for c in found.inputs[: args.top]]
    try:
        report["linear"] = expanded_weights(model, target.node, target.channel).to_json(shown)
    except NotLinear as error:
        report["linear"] = {"none": str(error)}
    if args.onward:
        if target.branch is None:
            report["onward"] = onward(model, pixels.to(device), target.node, target.channel, args.response).to_json(
                args.top, list(info.class_names) if info.class_names else imagenet_labels()
            )
        else:
            print("note: --onward reads a block's output; a branch's signal goes on inside its block", file=sys.stderr)
    if args.out:
        from explorer.cli.circuit_page import write_page

        write_page(args.out, report, model, index, args, device)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    return 0


def _open_index(folder: str, model: InceptionNetwork, info: WeightsInfo) -> ChannelIndex:
    from explorer.channels.index.reader import ChannelIndex

    index = ChannelIndex(folder)
    misfit = index.matches(model.config.variant, repr(model.config), info.identity)
    if misfit:
        raise ValueError(f"{folder}: {misfit}")
    return index


def gather(
    args: argparse.Namespace, model: InceptionNetwork, target: Target, index: ChannelIndex | None
) -> tuple[torch.Tensor, list[str], str]:
    """The images a circuit is measured on, as the network takes them; their names; and a note on where they are
    from, where the user did not name them."""
    import torch

    from explorer.runtime.images import load_image, sample_paths
    from explorer.runtime.preprocessing import crop_for_network, preprocessing_for, to_tensor

    said = ""
    if args.images:
        paths = [(path, path) for path in args.images]
    elif index is not None:
        if target.branch is None and target.block in index.blocks:
            examples = index.examples(target.block, target.channel)[: args.count]
            paths = [(index.root / e.path, e.path) for e in examples]
            said = f"the channel's top {len(paths)} images in the index"
        else:
            paths = [(index.root / p, p) for p in index.images[: args.count]]
            said = f"the index has no examples of {target.node}: its first {len(paths)} images"
    else:
        paths = [(p, p.name) for p in sample_paths()[: args.count]]
        said = f"no --index or images: the {len(paths)} bundled samples"
    if not paths:
        raise ValueError("no images to measure the circuit on")
    preprocessing = preprocessing_for(model.config.variant)
    tensors = [to_tensor(crop_for_network(load_image(path).image, preprocessing), preprocessing) for path, _ in paths]
    return torch.cat(tensors), [str(name) for _, name in paths], said


def table(report: dict) -> str:
    ablation = report["ablation"]
    lines = [
        f"{report['block']} channel {report['channel']}: response = its {report['response']} over the grid, "
        f"{ablation['response']:.4g} on average over {len(report['images'])} images",
        f"ablation: the top {ablation['k']} driving inputs zeroed lower it by {ablation['top']:.4g}; "
        f"{ablation['k']} random ones (median of {ablation['draws']} draws) by {ablation['random']:.4g}",
    ]
    if "shares" in report:
        shares = report["shares"]
        lines.append(
            f"through the shortcut: {shares['identity']:+.4g}; through the branches: {shares['branches']:+.4g}"
        )
    lines.append(f"{'rank':>4}  {'input':<24} {'score':>10}")
    for rank, entry in enumerate(report["inputs"], 1):
        name = f"{entry['block']} {entry.get('colour', entry['channel'])}"
        lines.append(
            f"{rank:>4}  {name:<24} {entry['score']:>+10.4g}  {'drives' if entry['score'] > 0 else 'holds back'}"
        )
    for entry in report.get("onward", {}).get("channels", [])[:5]:
        lines.append(f"  feeds {report['onward']['next_block']} {entry['channel']}: {entry['score']:+.4g}")
    for entry in report.get("onward", {}).get("classes", [])[:5]:
        lines.append(f"  feeds class {entry.get('label', entry['class'])}: {entry['score']:+.4g}")
    return "\n".join(lines)


def add_to(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "circuit",
        parents=[parents.network(), parents.repeats(), parents.engine()],
        help="which channels of the block before build a channel (gradient x activation, with an ablation check)",
    )
    command.add_argument("images", nargs="*", metavar="IMAGE", help="images to measure on (default: --index's)")
    command.add_argument("--block", required=True, help="a block (repeat_1.4) or a branch in one (repeat_1.4.branch1)")
    command.add_argument("--channel", type=parents.whole_number(0), required=True, metavar="C")
    command.add_argument("--index", metavar="DIR", help="an index: the channel's dataset examples are the images")
    command.add_argument(
        "--count",
        type=parents.whole_number(1, 256),
        default=16,
        metavar="N",
        help="images taken from the index or the samples (default 16)",
    )
    command.add_argument("--top", type=parents.whole_number(1), default=10, metavar="K", help="inputs listed")
    command.add_argument(
        "--response",
        choices=("max", "mean"),
        default="max",
        help="the channel's value at its maximum over the grid (default), or its mean",
    )
    command.add_argument(
        "--ablate",
        type=parents.whole_number(1),
        default=5,
        metavar="K",
        help="driving inputs zeroed in the ablation check (default 5)",
    )
    command.add_argument(
        "--draws",
        type=parents.whole_number(0, 1000),
        default=20,
        metavar="N",
        help="random sets zeroed beside them (default 20)",
    )
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--onward", action="store_true", help="also the next block's channels and classes it feeds")
    command.add_argument("--visualise", action="store_true", help="with --out: feature visualisations in the tiles")
    command.add_argument("--format", choices=("table", "json"), default="table")
    command.add_argument("--out", metavar="DIR", help="write the tiles as PNGs and a page, index.html")
    command.set_defaults(run=_circuit)
