"""The block graph: drawn from the code, shapes from a real forward pass, rendered by dot."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import torch

from explorer.analysis.summary import shape_text
from explorer.cli import main
from explorer.drawing.graph import block_graph, network_graph, render, trace_network
from explorer.nets import VARIANTS, build_model, make_config
from tests.cli import explorer

EDGE = re.compile(r'^\s*(\S+) -> (\S+) \[label=(?:"([^"]*)"|(\w+))', re.MULTILINE)
NODE = re.compile(r"^\s*(\w+) \[label=", re.MULTILINE)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def node_labels(source: str) -> list[str]:
    return [quoted or bare for quoted, bare in re.findall(r'label=(?:"([^"]*)"|(\w+))', source)]


def edges(source: str) -> dict[tuple[str, str], str]:
    return {(a, b): quoted or bare for a, b, quoted, bare in EDGE.findall(source)}


@pytest.fixture(scope="module")
def traced():
    return {variant: trace_network(make_config(variant)) for variant in VARIANTS}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_block_and_head_module_is_a_node_of_the_expanded_graph(traced, variant):
    model = traced[variant].model
    source = network_graph(traced[variant], "expanded").source
    nodes = set(NODE.findall(source))
    head = [name for comp in model.components if comp.key == "head" for name in comp.modules]
    for name in model.block_names() + head:
        assert name.replace(".", "_") in nodes, name
    # and every module of the model lives inside one of those nodes
    top_level = {name for name, _ in model.named_children()}
    assert top_level == {name.split(".")[0] for name in model.block_names() + head}


def test_edge_shapes_equal_a_real_forward_pass(traced, photos):
    model = build_model("released")
    with torch.no_grad():
        logits, intermediates = model.forward_intermediates(photos[:1])
    expanded = edges(network_graph(traced["released"], "expanded").source)
    outgoing = {a: label for (a, _), label in expanded.items()}
    assert outgoing["input"] == shape_text(tuple(photos[:1].shape))
    for name, tensor in intermediates.items():
        assert outgoing[name.replace(".", "_")] == shape_text(tuple(tensor.shape)), name
    assert outgoing["classif"] == shape_text(tuple(logits.shape))

    overview = edges(network_graph(traced["released"], "overview").source)
    labels = {a: label for (a, _), label in overview.items()}
    assert labels["block_a"] == shape_text(tuple(intermediates["repeat.9"].shape)) == "35x35x320"
    assert labels["block_b"] == shape_text(tuple(intermediates["repeat_1.19"].shape)) == "17x17x1088"
    assert labels["block_c"] == shape_text(tuple(intermediates["block8"].shape)) == "8x8x2080"
    assert labels["final_conv"] == "8x8x1536"


def test_block_detail_shows_branches_scale_addition_and_relu(traced, photos):
    source = block_graph(traced["released"], "repeat_1.0").source
    labels = node_labels(source)
    assert "1x7 conv, 160\nBN, ReLU" in labels and "7x1 conv, 192\nBN, ReLU" in labels
    assert "1x1 conv, 1088\nlinear 1x1: no BN, no ReLU" in labels
    assert "x 0.1" in labels and "+" in labels and "ReLU" in labels and "Filter concat" in labels
    # the shortcut: the input feeds the addition directly
    detail = edges(source)
    add = next(b for (a, b) in detail if a == "input" and b.startswith("add"))
    assert detail[("input", add)] == "17x17x1088"
    # the concat carries 192 + 192 = 384 channels, as a real forward of the block's branches gives
    model = build_model("released")
    with torch.no_grad():
        _, inter = model.forward_intermediates(photos[:1])
        concat = model.repeat_1[0].branches()
        width = sum(b(inter["mixed_6a"]).shape[1] for b in concat)
    assert any(label == f"17x17x{width}" for (a, b), label in detail.items() if b.startswith("repeat_1_0_conv2d"))


def test_final_block_has_no_relu_and_reductions_have_strides(traced):
    block8 = node_labels(block_graph(traced["released"], "block8").source)
    assert "ReLU" not in block8 and "x 1" in block8
    reduction = block_graph(traced["released"], "mixed_6a").source
    assert "3x3 conv, 384, stride 2, valid" in reduction and "3x3 max pool\nstride 2, valid" in reduction
    v2 = block_graph(traced["paper-v2"], "mixed_4a").source
    assert "7x1 conv, 64" in v2 and "1x7 conv, 64" in v2


def test_repeats_change_the_graph():
    traced = trace_network(make_config("released", repeats=(5, 10, 5)))
    source = network_graph(traced, "overview").source
    assert "Block35 x 5" in source and "Block17 x 10" in source and "Block8 x 4 + 1" in source
    assert "repeat_9" not in network_graph(traced, "expanded").source


@needs_dot
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dot_renders_every_level_and_every_block(traced, variant):
    for level in ("overview", "expanded"):
        svg = render(network_graph(traced[variant], level), "svg")
        assert svg.lstrip().startswith(b"<?xml") and b"</svg>" in svg
    png = render(network_graph(traced[variant], "overview"), "png")
    assert png.startswith(b"\x89PNG")
    model = traced[variant].model
    head = [name for comp in model.components if comp.key == "head" for name in comp.modules]
    for block in model.block_names() + head:
        assert b"</svg>" in render(block_graph(traced[variant], block), "svg"), block


def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return explorer("graph", *args, binary=True)


@needs_dot
def test_cli_graph(tmp_path, capsys):
    dot = run_cli()
    assert dot.returncode == 0 and dot.stdout.startswith(b'digraph "released-overview"')
    svg = run_cli("--block", "repeat_1.0", "--format", "svg")
    assert svg.returncode == 0 and b"1x7 conv, 160" in svg.stdout
    out = tmp_path / "v1.png"
    png = run_cli("--variant", "paper-v1", "--level", "expanded", "-o", str(out))
    assert png.returncode == 0 and out.read_bytes().startswith(b"\x89PNG")
    for bad in (("--block", "repeat.99"), ("--format", "png"), ("-o", str(tmp_path / "x.gif"))):
        assert main(["graph", *bad]) == 2  # in this process: the same parser and messages, without a start-up
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_cluster_labels_keep_off_boxes_lines_and_shape_labels_and_units_have_no_clusters(traced):
    """Where dot puts each branch's name: never on a box, a line or a shape label (253 times it was, over every
    variant's blocks and expanded network, as "branch1" was), and a unit's drawing (conv, batch norm, ReLU: one
    chain) has no boxes around its parts (its "conv" box had its name on the line into it)."""
    from explorer.nets.units import ConvBnRelu
    from tests.drawing.layout_check import label_collisions

    for variant in ("released", "inception-v4"):  # residual blocks, and blocks whose names move to the right
        for block in traced[variant].model.block_names():
            assert not label_collisions(block_graph(traced[variant], block).source), (variant, block)
        assert not label_collisions(network_graph(traced[variant], "expanded").source), variant
    released = traced["released"]
    units = [n for n, m in released.model.named_modules() if isinstance(m, ConvBnRelu) and n.startswith("repeat_1.0")]
    for unit in units:
        assert "cluster" not in block_graph(released, unit).source, unit
        assert not label_collisions(block_graph(released, unit).source), unit


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_maps_cluster_labels_are_where_dot_kept_room_for_them(traced):
    """The network map draws dot's layout with plotly: each branch's name goes where dot put it (clear of the
    boxes), not on the cluster's top edge, where it sat on the first box and its incoming line."""
    from explorer.drawing.netmap import figure, layout

    drawn = layout(block_graph(traced["released"], "repeat_1.0"))
    assert {c.label for c in drawn.clusters} == {"branch0", "branch1"}
    notes = {a.text: (a.x, a.y) for a in figure(drawn).layout.annotations}
    for cluster in drawn.clusters:
        assert notes[cluster.label] == cluster.label_at
        x, y = cluster.label_at
        for box in drawn.boxes:
            assert not (abs(x - box.x) < box.width / 2 and abs(y - box.y) < box.height / 2), (cluster.label, box.label)
