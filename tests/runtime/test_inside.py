"""Inside a block: every output, computed by running its submodules explicitly, against forward hooks on
timm's model with the same weights (timm's module names are ours), for one block of each kind."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from explorer.nets import build_model, make_config
from explorer.nets.weights import WeightsInfo
from explorer.runtime import Engine
from explorer.runtime.images import SAMPLES_DIR
from explorer.runtime.inside import block_inputs, inside_tensors, unit_tensors
from tests.cli import explorer
from tests.nets.test_model import randomise_

timm = pytest.importorskip("timm")

ONE_OF_EACH = [
    "conv2d_1a",  # a stem unit: conv, batch norm, ReLU
    "maxpool_3a",  # a stem pooling
    "mixed_5b",
    "repeat.0",  # Inception-ResNet-A
    "mixed_6a",  # Reduction-A
    "repeat_1.0",  # Inception-ResNet-B
    "mixed_7a",  # Reduction-B
    "repeat_2.0",  # Inception-ResNet-C
    "block8",  # the last C block: scale 1.0, no ReLU
    "conv2d_7b",
]


@pytest.fixture(scope="module")
def pair(photos):
    """Our model and timm's with the same (randomised, batch norms included) weights, and every block's input."""
    ours = build_model("released").eval()
    randomise_(ours)
    theirs = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        inputs = block_inputs(ours, photos[:1])
    return ours, theirs, inputs


def timm_outputs(theirs: nn.Module, block: str, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What timm's modules give for the inside names, caught with forward hooks (cloned: its ReLUs are in place)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    module = theirs.get_submodule(block)

    def keep(name: str):
        return lambda _m, _inputs, output: seen.__setitem__(name, output.clone())

    for name in names:
        suffix = name.removeprefix(block + ".")
        if suffix in ("concat", "scaled_residual", "shortcut", "output"):
            continue
        if name.endswith(".bn"):  # timm's BatchNormAct2d applies the ReLU itself: what its act receives
            act = theirs.get_submodule(f"{name}.act")
            hooks.append(act.register_forward_pre_hook(lambda _m, a, name=name: seen.__setitem__(name, a[0].clone())))
        elif name.endswith(".relu"):  # the unit's output
            hooks.append(theirs.get_submodule(name.removesuffix(".relu")).register_forward_hook(keep(name)))
        else:
            hooks.append(theirs.get_submodule(name).register_forward_hook(keep(name)))
    if hasattr(module, "conv2d"):  # the concatenation is what timm's linear 1x1 receives
        hooks.append(module.conv2d.register_forward_pre_hook(lambda _m, a: seen.__setitem__(f"{block}.concat", a[0])))
    hooks.append(module.register_forward_pre_hook(lambda _m, a: seen.__setitem__(f"{block}.shortcut", a[0].clone())))
    hooks.append(module.register_forward_hook(lambda _m, _a, out: seen.__setitem__(f"{block}.block", out.clone())))
    try:
        with torch.no_grad():
            theirs(x)
    finally:
        for hook in hooks:
            hook.remove()
    if hasattr(module, "conv2d"):
        seen[f"{block}.scaled_residual"] = seen[f"{block}.conv2d"] * module.scale
        seen[f"{block}.output"] = seen[f"{block}.block"]
    elif f"{block}.concat" not in seen and f"{block}.conv" not in seen:
        seen[f"{block}.concat" if hasattr(module, "branch0") else f"{block}.output"] = seen[f"{block}.block"]
    return seen


@pytest.mark.parametrize("block", ONE_OF_EACH)
def test_inside_outputs_equal_timms_hooked_outputs(pair, photos, block):
    ours, theirs, inputs = pair
    with torch.no_grad():
        parts = inside_tensors(ours.get_submodule(block), inputs[block], block)
    names = [p.name for p in parts]
    reference = timm_outputs(theirs, block, names, photos[:1])
    for part in parts:
        assert part.name in reference, f"timm has no {part.name}"
        assert part.tensor.shape == reference[part.name].shape, part.name
        assert torch.allclose(part.tensor, reference[part.name], atol=1e-4, rtol=1e-4), part.name
    assert torch.equal(parts[-1].tensor, ours.get_submodule(block)(inputs[block]).detach())  # the block's output


def test_inside_names_and_kinds_follow_forward_order(pair):
    ours, _, inputs = pair
    with torch.no_grad():
        parts = inside_tensors(ours.get_submodule("repeat_1.0"), inputs["repeat_1.0"], "repeat_1.0")
    assert [(p.name, p.kind) for p in parts] == [
        ("repeat_1.0.branch0", "unit"),
        ("repeat_1.0.branch1.0", "unit"),
        ("repeat_1.0.branch1.1", "unit"),
        ("repeat_1.0.branch1.2", "unit"),
        ("repeat_1.0.concat", "concat"),
        ("repeat_1.0.conv2d", "linear"),
        ("repeat_1.0.scaled_residual", "scaled_residual"),
        ("repeat_1.0.shortcut", "shortcut"),
        ("repeat_1.0.output", "output"),
    ]
    with torch.no_grad():
        unit = unit_tensors(ours, "repeat_1.0", inputs["repeat_1.0"], "repeat_1.0.branch1.1")
        expected = ours.repeat_1[0].branch1[1](ours.repeat_1[0].branch1[0](inputs["repeat_1.0"]))
    assert [p.name for p in unit] == [f"repeat_1.0.branch1.1.{s}" for s in ("conv", "bn", "relu")]
    assert torch.equal(unit[-1].tensor, expected)
    with pytest.raises(ValueError, match="not a conv-BN-ReLU unit"):
        unit_tensors(ours, "repeat_1.0", inputs["repeat_1.0"], "repeat_1.0.conv2d")


@pytest.mark.parametrize(
    ("variant", "block"),
    [
        ("paper-v2", "mixed_3a"),
        ("paper-v2", "mixed_4a"),
        ("paper-v1", "repeat_2.4"),
        ("inception-v4", "features.3"),
        ("inception-v4", "features.18"),
        ("inception-v4", "features.20"),
    ],
)
def test_paper_variants_inside_ends_with_the_blocks_output(variant, block, photos):
    model = build_model(variant).eval()
    with torch.no_grad():
        inputs = block_inputs(model, photos[:1])
        parts = inside_tensors(model.get_submodule(block), inputs[block], block)
        assert torch.equal(parts[-1].tensor, model.get_submodule(block)(inputs[block]))
    assert parts[-1].name in (f"{block}.concat", f"{block}.output")


def test_engine_inside_reduces_as_the_engine_does(photos):
    model = build_model("released")
    engine = Engine(model, WeightsInfo("random", random=True), device="cpu", cpu_dtype=torch.float32)
    from explorer.runtime.images import load_image

    image = load_image(SAMPLES_DIR / "cat.jpg").image
    inputs = engine.block_inputs(image)
    inside = engine.inside(inputs, "repeat_1.0")
    block = engine.run(image).block("repeat_1.0")
    last = inside[-1]
    assert last.name == "repeat_1.0.output" and last.shape == block.shape
    assert abs(last.mean - block.stats.mean) < 1e-4 and abs(last.std - block.stats.std) < 1e-4
    assert last.top_channels == block.top_channels
    assert engine.inside(inputs, "repeat_1.0.branch1.1")[-1].name == "repeat_1.0.branch1.1.relu"
    with pytest.raises(ValueError, match=r"unknown block 'repeat_9\.0'"):
        engine.inside(inputs, "repeat_9.0")
    assert make_config("released").repeats.b == 20  # the names above exist in the released table


def test_cli_inside_json_and_pngs(tmp_path):
    done = explorer("infer", str(SAMPLES_DIR / "cat.jpg"), "--inside", "repeat_1.0", "--format", "json",
                    "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    inside = json.loads(done.stdout)["inside"]
    assert [p["name"] for p in inside][:4] == [
        "repeat_1.0.branch0",
        "repeat_1.0.branch1.0",
        "repeat_1.0.branch1.1",
        "repeat_1.0.branch1.2",
    ]
    assert inside[-1]["name"] == "repeat_1.0.output" and inside[-1]["kind"] == "output"
    assert all({"mean", "std"} <= set(p["statistics"]) and len(p["shape"]) == 3 for p in inside)
    assert all((tmp_path / f"{p['name']}_mean.png").read_bytes()[:4] == b"\x89PNG" for p in inside)
    bad = explorer("infer", str(SAMPLES_DIR / "cat.jpg"), "--inside", "repeat_9.0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown block 'repeat_9.0' for --inside")


def test_inception_c_inside_equals_timms_hooked_units(photos):
    """Inception-C's split pairs: every unit's output inside the block against timm's own, hooked."""
    timm = pytest.importorskip("timm")
    peer = timm.create_model("inception_v4", pretrained=False).eval()
    model = build_model("inception-v4", seed=5).eval()
    peer.load_state_dict(model.state_dict(), strict=True)
    seen: dict[str, torch.Tensor] = {}
    block = "features.20"
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.clone()))
        for name, module in peer.named_modules()
        if name.startswith(block + ".") and name.count(".") == 2
    ]
    with torch.no_grad():
        peer(photos[:1])
        inputs = block_inputs(model, photos[:1])
        parts = inside_tensors(model.get_submodule(block), inputs[block], block)
    for handle in handles:
        handle.remove()
    units = {p.name: p.tensor for p in parts if p.kind == "unit"}
    assert {f"{block}.branch1_1a", f"{block}.branch2_3b", f"{block}.branch3.1"} <= set(units)
    for name, theirs in seen.items():
        if name in units:
            torch.testing.assert_close(units[name], theirs, rtol=1e-4, atol=1e-4)
    assert len([n for n in seen if n in units]) == 9  # every unit but the pool branch's (inside branch3)
    concat = next(p for p in parts if p.kind == "concat")
    assert concat.input.split(",")[1:3] == [f"{block}.branch1_1a", f"{block}.branch1_1b"]
