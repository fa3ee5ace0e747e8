"""``irv2-explorer export``: the network as ONNX (for Netron, onnxruntime) or a torch.export program."""

from __future__ import annotations

import argparse

from explorer.cli import parents
from explorer.cli.engines import load_model


def _export(args: argparse.Namespace) -> int:
    from explorer.nets.export import export

    if not args.out.endswith(f".{args.format}"):
        raise ValueError(f"-o names a .{args.format} file, not {args.out!r}")
    model, info = load_model(args.weights, args.variant, args.labels, **parents.overrides(args))
    path = export(model, args.out, args.format)
    size = path.stat().st_size / 1e6
    print(f"{path}: {model.config.network} ({model.config.variant}), {info.source}, {size:.0f} MB {args.format}")
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        parents=[parents.network(), parents.repeats(), parents.engine()],
        help="the network as ONNX (Netron, onnxruntime) or a torch.export program, module names kept",
    )
    export.add_argument("--format", choices=("onnx", "pt2"), default="onnx")
    export.add_argument("-o", "--out", required=True, metavar="FILE")
    export.set_defaults(run=_export)
