"""The network as a file other tools open: ONNX (Netron, onnxruntime) and a ``torch.export`` program (.pt2).

Both keep the module names of the network, so that Netron shows ``repeat_1.0.branch1.1`` where the explorer
does: the ONNX file is torch.onnx's dynamo exporter's, which records each node's module path, and names its
nodes after it. The batch size is free in both (one image or many).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from explorer.nets.networks import InceptionNetwork

FORMATS = ("onnx", "pt2")


def _example(model: InceptionNetwork) -> tuple[torch.Tensor]:
    size = model.config.input_size
    return (torch.randn(2, model.config.in_channels, size, size),)


def exported_program(model: InceptionNetwork) -> torch.export.ExportedProgram:
    """The network as a ``torch.export`` program, any batch size."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(model.eval(), _example(model), dynamic_shapes=({0: batch},), strict=False)


def export(model: InceptionNetwork, path: str | Path, fmt: str) -> Path:
    """Write ``model`` as ``fmt`` (onnx or pt2) to ``path``, whole or not at all."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    path = Path(path)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".", prefix=".", suffix=f".partial.{fmt}"
    )
    os.close(handle)
    try:
        program = exported_program(model)
        if fmt == "pt2":
            torch.export.save(program, temporary)
        else:
            try:
                import onnxscript  # noqa: F401 (the exporter needs it; said here in one line if missing)
            except ImportError:
                raise ValueError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript") from None
            onnx_program = torch.onnx.export(
                program, input_names=["image"], output_names=["logits"], dynamo=True, verbose=False
            )
            onnx_program.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
