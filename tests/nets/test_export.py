"""Export: the ONNX file runs in onnxruntime with our logits and Netron's module names; the .pt2 program too."""

from __future__ import annotations

import pytest
import torch

from explorer.cli import main
from explorer.nets import VARIANTS, build_model
from explorer.nets.export import export

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def module_paths(path) -> set[str]:
    """Every module path the ONNX graph records for its nodes (what Netron shows as a node's scope)."""
    found = set()
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        found.add(node.name)
        for prop in node.metadata_props:
            found.add(prop.value)
    return found


def test_onnx_runs_in_onnxruntime_with_our_logits_and_keeps_the_module_names(tmp_path, photos):
    # The released network with fewer A and B blocks (its C blocks all there, as the names below ask): the
    # exporter's time grows with the blocks; the released network's whole export runs in tests/test_docs.py.
    model = build_model("released", repeats=(1, 2, 10))
    path = export(model, tmp_path / "released.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: photos.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(photos), rtol=1e-4, atol=1e-4)
    names = " ".join(module_paths(path))
    for module in ("repeat_1.1.branch1.1", "mixed_7a.branch0", "repeat_2.8", "block8", "conv2d_7b", "classif"):
        assert module in names, module
    one = session.run(None, {session.get_inputs()[0].name: photos[:1].numpy()})[0]  # any batch size
    assert one.shape == (1, 1000)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_exports_and_the_program_computes_the_same(variant, tmp_path, capsys):
    out = tmp_path / f"{variant}.pt2"
    assert (
        main(
            [
                "export",
                "--variant",
                variant,
                "--repeats",
                "1",
                "1",
                "1",
                "--weights",
                "random",
                "--format",
                "pt2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert f"{out}:" in capsys.readouterr().out
    model = build_model(variant, repeats=(1, 1, 1))
    program = torch.export.load(str(out)).module()
    x = torch.randn(3, 3, 299, 299)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), rtol=1e-4, atol=1e-4)
    onnx_out = tmp_path / f"{variant}.onnx"
    assert main(["export", "--variant", variant, "--repeats", "1", "1", "1", "-o", str(onnx_out)]) == 0
    assert onnx.load(str(onnx_out)).graph.node


def test_a_wrong_file_name_writes_nothing(tmp_path, capsys):
    assert main(["export", "--format", "onnx", "-o", str(tmp_path / "model.pt2")]) == 2
    assert "names a .onnx file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
