"""Graphviz pictures of the network, drawn from the built model and its traced forward pass.

Three levels, all from the same ``torch.fx`` trace with shapes (:func:`trace_network`), so a
picture can never disagree with the code:

- ``overview``: one node per component (``Block35 x 10``), with its parameter count;
- ``expanded``: one node per block (``repeat.0`` ... ``repeat.9``), grouped by component;
- block detail (:func:`block_graph`): one block's branches with kernel sizes, strides, padding and
  channels, the concatenation, the linear 1x1, the residual scale, the addition and the ReLU,
  drawn bottom-up as the paper's figures are.

Every edge carries the shape of the tensor on it (height x width x channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import graphviz
from torch import nn

from explorer.analysis.summary import shape_text
from explorer.analysis.tracing import Operation, trace_operations
from explorer.drawing.palette import COMPONENT_COLOURS
from explorer.drawing.placement import clusters_right_of
from explorer.nets import (
    ConvBnRelu,
    InceptionNetwork,
    InceptionResNetBlock,
    NetworkConfig,
    RepeatedBlocks,
    is_within,
    model_from_config,
)

LEVELS = ("overview", "expanded")
FORMATS = ("dot", "svg", "png")
DIRECTIONS = {"top to bottom": "TB", "left to right": "LR", "bottom to top": "BT"}

_FONT = "Helvetica"


#: What to do when Graphviz's ``dot`` is not there.
DOT_MISSING = "Graphviz's dot program is not installed (Debian: apt-get install graphviz)"


class GraphRenderError(RuntimeError):
    """Graphviz could not render a graph (most often: its ``dot`` program is not installed)."""


@dataclass(frozen=True)
class TracedNetwork:
    """A variant's model (on the meta device) and its traced operations with shapes."""

    model: InceptionNetwork
    ops: list[Operation]

    def ops_in(self, scope: str) -> list[Operation]:
        return [op for op in self.ops if is_within(op.scope, scope)]

    def output_shape(self, scope: str) -> tuple[int, ...]:
        return self.ops_in(scope)[-1].shape or ()

    def params(self, scope: str) -> int:
        return sum(p.numel() for p in self.model.get_submodule(scope).parameters())


def trace_network(config: NetworkConfig) -> TracedNetwork:
    model = model_from_config(config, seed=None, device="meta").eval()
    return TracedNetwork(model, trace_operations(model, with_shapes=True))


def _digraph(name: str, direction: str, ranksep: float = 0.3) -> graphviz.Digraph:
    graph = graphviz.Digraph(name)
    graph.attr(rankdir=direction, ranksep=str(ranksep), nodesep="0.25", fontname=_FONT, newrank="true")
    graph.attr("node", shape="box", style="rounded,filled", fontname=_FONT, fontsize="11", penwidth="1.2")
    graph.attr("edge", fontname=_FONT, fontsize="9", color="#555555", arrowsize="0.7")
    return graph


def _fill(key: str) -> dict[str, str]:
    colour = COMPONENT_COLOURS[key]
    return {"fillcolor": colour + "33", "color": colour}  # translucent fill, solid border


def _params(n: int) -> str:
    return f"{n:,} params"


_TERMINAL = {"shape": "oval", "style": "filled", "fillcolor": "#ffffff", "color": "#555555"}


def _input_node(graph: graphviz.Digraph) -> str:
    graph.node("input", "Input", **_TERMINAL)
    return "input"


# --------------------------------------------------------------------------------------------
# Whole network
# --------------------------------------------------------------------------------------------


def network_graph(traced: TracedNetwork, level: str = "overview", direction: str = "TB") -> graphviz.Digraph:
    """The whole network: one node per component (``overview``) or per block (``expanded``)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of: {', '.join(LEVELS)}")
    model = traced.model
    graph = _digraph(f"{model.config.variant}-{level}", direction, ranksep=0.25 if level == "expanded" else 0.35)
    previous = _input_node(graph)
    shape = traced.ops[0].shape or ()
    for comp in model.components:
        nodes = _component_nodes(traced, comp.key, comp.modules, level)
        target = graph
        if level == "expanded" and len(nodes) > 1:
            target = graphviz.Digraph(f"cluster_{comp.key}")
            target.attr(
                label=comp.title.replace(" x", "\\lx").replace(" (", "\\l(") + "\\l",  # lines to the left
                labeljust="l",
                margin="44",
                fontsize="9",
                style="rounded",
                color=COMPONENT_COLOURS[comp.key],
                fontname=_FONT,
            )
        for node_id, label, scope_shape, name in nodes:
            target.node(node_id, label, explorer=name, **_fill(comp.key))
            graph.edge(previous, node_id, label=shape_text(shape))
            previous, shape = node_id, scope_shape
        if target is not graph:
            graph.subgraph(target)
    graph.node("output", f"Logits\n{model.config.num_classes} classes", **_TERMINAL)
    graph.edge(previous, "output", label=shape_text(shape))
    return graph


def _component_nodes(
    traced: TracedNetwork, key: str, modules: tuple[str, ...], level: str
) -> list[tuple[str, str, tuple[int, ...], str]]:
    """(node id, label, output shape, what the node stands for) for a component's nodes at this level."""
    model = traced.model
    if key == "head" or level == "expanded":
        nodes = []
        for name in modules:
            module = model.get_submodule(name)
            scopes = [f"{name}.{i}" for i in range(len(module))] if isinstance(module, RepeatedBlocks) else [name]
            for scope in scopes:
                nodes.append((_node_id(scope), _block_label(traced, scope), traced.output_shape(scope), scope))
        return nodes
    label = _component_label(traced, key, modules)
    params = sum(traced.params(name) for name in modules)
    return [(key, f"{label}\n{_params(params)}", traced.output_shape(modules[-1]), key)]


def component_graph(traced: TracedNetwork, key: str, direction: str = "TB") -> graphviz.Digraph:
    """One component's blocks in order (the stem's units, the 20 B blocks, the head's layers)."""
    model = traced.model
    comp = next((c for c in model.components if c.key == key), None)
    if comp is None:
        raise ValueError(f"unknown component {key!r}; components are: {', '.join(c.key for c in model.components)}")
    graph = _digraph(f"{model.config.variant}-{key}", direction, ranksep=0.25)
    graph.attr(label=comp.title, labelloc="t", fontsize="14")
    previous = _input_node(graph)
    first = traced.ops_in(comp.modules[0])[0]
    shape = traced.ops[first.inputs[0]].shape if first.inputs else None
    for node_id, label, scope_shape, name in _component_nodes(traced, key, comp.modules, "expanded"):
        graph.node(node_id, label, explorer=name, **_fill(key))
        graph.edge(previous, node_id, label=shape_text(shape or ()))
        previous, shape = node_id, scope_shape
    graph.node("output", "Output", **_TERMINAL)
    graph.edge(previous, "output", label=shape_text(shape or ()))
    return graph


def _node_id(scope: str) -> str:
    return scope.replace(".", "_")


def _component_label(traced: TracedNetwork, key: str, modules: tuple[str, ...]) -> str:
    model = traced.model
    comp = next(c for c in model.components if c.key == key)
    if key in ("block_a", "block_b", "block_c"):
        paper_name = comp.title.rsplit(" x", 1)[0]
        runs = [model.get_submodule(name) for name in modules]
        first = next(iter(runs[0])) if isinstance(runs[0], RepeatedBlocks) and len(runs[0]) else runs[-1]
        # A run of repeated blocks and a block held apart (the released last C block) read "9 + 1"; blocks
        # that are each their own module (Inception-v4's features.6 ... features.9) are one run of four.
        if any(isinstance(m, RepeatedBlocks) for m in runs):
            counts = [len(m) if isinstance(m, RepeatedBlocks) else 1 for m in runs]
        else:
            counts = [len(runs)]
        repeat = " + ".join(str(n) for n in counts if n)
        return f"{type(first).__name__} x {repeat}\n{paper_name}"
    if len(modules) == 1:
        module = model.get_submodule(modules[0])
        return f"{comp.title}\n{modules[0]} ({type(module).__name__})"
    return f"{comp.title}\n{modules[0]} ... {modules[-1]}"


def _block_label(traced: TracedNetwork, scope: str) -> str:
    module = traced.model.get_submodule(scope)
    lines = [f"{scope} ({type(module).__name__})"]
    if isinstance(module, nn.Sequential) and any(isinstance(m, nn.AdaptiveAvgPool2d) for m in module):
        lines = [f"{scope}: global average pool"]
    elif isinstance(module, nn.Linear):
        lines = [f"{scope}: FC, {module.in_features} -> {module.out_features}"]
    elif isinstance(module, nn.Dropout):
        lines = [f"{scope}: dropout, p = {module.p:g}"]
    elif isinstance(module, InceptionResNetBlock):
        lines.append(f"scale {module.scale:g}" + ("" if module.activate else ", no ReLU"))
    elif isinstance(module, ConvBnRelu):
        lines.append(_conv_text(module.conv))
    params = traced.params(scope)
    if params:
        lines.append(_params(params))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# One block
# --------------------------------------------------------------------------------------------


def block_graph(traced: TracedNetwork, block: str, direction: str = "BT") -> graphviz.Digraph:
    """One block's inside: branches, concatenation, linear 1x1, scale, addition and ReLU.

    Each conv-BN-ReLU unit inside the block is one node, as the paper draws it.
    """
    names = traced.model.block_names() + [n for c in traced.model.components if c.key == "head" for n in c.modules]
    if block not in names and not _is_unit(traced.model, block):
        raise ValueError(f"unknown block {block!r}; blocks are: {', '.join(names)}")
    model = traced.model
    residual = isinstance(model.get_submodule(block), InceptionResNetBlock)
    graph = _block_drawing(traced, block, direction, frozenset())
    if not residual and direction in ("BT", "TB") and graph.source.count("subgraph cluster_") > 1:
        # Each branch's name goes in the corner away from the lines that come from the input: the left one
        # for a branch left of the input, the right one for a branch right of it. Where that is shows only
        # once dot has laid the drawing out. (In a residual block the shortcut runs down the right side: the
        # left corners stay free.)
        right = clusters_right_of(graph, "input")
        if right:
            graph = _block_drawing(traced, block, direction, right)
    return graph


def _block_drawing(traced: TracedNetwork, block: str, direction: str, right: frozenset[str]) -> graphviz.Digraph:
    """:func:`block_graph`'s drawing, the clusters named in ``right`` with their names in the right corner."""
    model = traced.model
    ops = traced.ops_in(block)
    key = ops[0].component
    graph = _digraph(f"{model.config.variant}-{block}", direction, ranksep=0.3)
    graph.attr(label=f"{block} ({type(model.get_submodule(block)).__name__})", labelloc="t", fontsize="14")

    def group(op: Operation) -> str:
        unit = op.scope.rsplit(".", 1)[0]
        if unit != block and is_within(unit, block) and isinstance(model.get_submodule(unit), ConvBnRelu):
            return unit
        return op.name

    groups: dict[str, list[Operation]] = {}
    for op in ops:
        groups.setdefault(group(op), []).append(op)

    branches: dict[str, graphviz.Digraph] = {}
    for node_id, members in groups.items():
        label, attrs = _detail_node(model, node_id, members, key)
        attrs = {**attrs, "explorer": _inside_name(model, block, node_id, members)}
        # a unit's parts (conv, bn, act) are one chain, not branches: no boxes around them
        branch = None if _is_unit(model, block) else _branch_of(members[0].scope, block)
        if branch is None:
            graph.node(_node_id(node_id), label, **attrs)
            continue
        if branch not in branches:
            branches[branch] = graphviz.Digraph(f"cluster_{_node_id(branch)}")
        branches[branch].node(_node_id(node_id), label, **attrs)
    for branch, sub in branches.items():
        # Each branch's name in a corner (see block_graph), in a margin wide enough that the lines into and out
        # of the branch's nodes (in the middle) pass beside it, not through it.
        name = f"cluster_{_node_id(branch)}"
        sub.attr(
            label=branch.rsplit(".", 1)[-1],
            labeljust="r" if name in right else "l",
            style="dashed",
            margin="20",
            color="#bbbbbb",
            fontsize="9",
            fontname=_FONT,
        )
        graph.subgraph(sub)

    _input_node(graph)
    seen = set()
    for op in ops:
        for i in op.inputs:
            source = traced.ops[i]
            src = _node_id(group(source)) if is_within(source.scope, block) else "input"
            dst = _node_id(group(op))
            if src != dst and (src, dst) not in seen:
                seen.add((src, dst))
                graph.edge(src, dst, label=shape_text(source.shape or ()))
    graph.node("output", "Output", **_TERMINAL)
    graph.edge(_node_id(group(ops[-1])), "output", label=shape_text(ops[-1].shape or ()))
    return graph


def _is_unit(model: InceptionNetwork, path: str) -> bool:
    """A conv-BN-ReLU unit inside a block (``repeat_1.0.branch1.1``): drawn as conv, BN and ReLU."""
    try:
        return "." in path and isinstance(model.get_submodule(path), ConvBnRelu)
    except AttributeError:
        return False


def _inside_name(model: InceptionNetwork, block: str, group: str, members: list[Operation]) -> str:
    """What a node of a block's drawing stands for, named as :mod:`explorer.runtime.inside` names its outputs."""
    op = members[0]
    if len(members) > 1:
        return group  # a unit
    if op.kind == "concat":
        return f"{block}.concat"
    if op.kind == "scaling":
        return f"{block}.scaled_residual"
    if op.kind == "residual_add" or op.scope == block:
        return f"{block}.output"
    if op.kind == "activation" and isinstance(model.get_submodule(block), InceptionResNetBlock):
        return f"{block}.output"
    return op.scope  # a pooling, the linear 1x1, or a unit's own conv, batch norm and ReLU


def _branch_of(scope: str, block: str) -> str | None:
    rest = scope[len(block) + 1 :].split(".") if scope != block else []
    if rest and rest[0] in ("maxpool", "conv"):  # the stem's Mixed_3a / 5a name their two branches so
        return f"{block}.{rest[0]}"
    # Inception-C's units sit on the block (branch1_0, branch1_1a, ...): one branch per number.
    return f"{block}.{rest[0].split('_')[0]}" if rest and rest[0].startswith("branch") else None


def _conv_text(conv: nn.Conv2d) -> str:
    kh, kw = conv.kernel_size
    parts = [f"{kh}x{kw} conv, {conv.out_channels}"]
    if conv.stride != (1, 1):
        parts.append(f"stride {conv.stride[0]}")
    if max(kh, kw) > 1 and conv.padding == (0, 0):
        parts.append("valid")
    return ", ".join(parts)


_PLAIN = {"fillcolor": "#eeeeee", "color": "#888888"}
_OPERATOR = {"shape": "circle", "fillcolor": "#ffffff"}


def _detail_node(model: InceptionNetwork, node_id: str, members: list[Operation], key: str) -> tuple[str, dict]:
    """Label and style of one node of a block's inside."""
    op = members[0]
    if len(members) > 1:  # a conv-BN-ReLU unit
        return f"{_conv_text(model.get_submodule(node_id).conv)}\nBN, ReLU", _fill(key)
    module = model.get_submodule(op.scope) if op.scope else None
    if op.kind == "conv":
        owner = model.get_submodule(op.scope.rsplit(".", 1)[0])
        role = "linear 1x1: no BN, no ReLU" if isinstance(owner, InceptionResNetBlock) else "conv"
        linear_style = {"fillcolor": "#ffffff", "color": COMPONENT_COLOURS[key], "style": "rounded,filled,dashed"}
        return f"{_conv_text(module)}\n{role}", linear_style
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global avg pool", _PLAIN
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        k, stride, pad = module.kernel_size, module.stride, module.padding
        return f"{k}x{k} {kind} pool\nstride {stride}, {'valid' if pad == 0 else 'same'}", _PLAIN
    if op.kind == "concat":
        return "Filter concat", _PLAIN
    if op.kind == "scaling":
        return f"x {model.get_submodule(op.scope).scale:g}", _OPERATOR
    if op.kind == "residual_add":
        return "+", {**_OPERATOR, "fontsize": "16"}
    if op.kind == "activation":
        return "ReLU", {"fillcolor": "#ffffff", "color": "#555555"}
    if op.kind == "batch_norm":
        return "batch norm", _fill(key)
    if isinstance(module, nn.Linear):
        return f"FC {module.in_features} -> {module.out_features}", _fill(key)
    return (type(module).__name__ if module is not None else op.kind), {"fillcolor": "#ffffff"}


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def render(graph: graphviz.Digraph | graphviz.Source, fmt: str) -> bytes:
    """The graph as DOT source, SVG or PNG. SVG and PNG need Graphviz's ``dot`` program."""
    if fmt == "dot":
        return graph.source.encode()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphRenderError(DOT_MISSING) from None
    except graphviz.CalledProcessError as error:
        raise GraphRenderError(f"dot failed: {error.stderr.decode(errors='replace').strip()}") from None
