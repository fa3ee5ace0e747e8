"""The network map: where a node sits (network -> component -> block -> unit), and its drawing as a plotly
figure laid out by Graphviz (``dot -Tjson0`` gives the positions; plotly zooms, pans, hovers and clicks).

A node is named as the app's URLs and the CLI name it: ``""`` for the whole network, a component's key
(``block_b``), a block (``repeat_1.0``), a unit inside a block (``repeat_1.0.branch1.1``), or another
output inside a block as :mod:`explorer.runtime.inside` names it (``repeat_1.0.concat``, ``mixed_6a.branch2``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import graphviz
import plotly.graph_objects as go
from torch import nn

from explorer.drawing.graph import (
    DOT_MISSING,
    GraphRenderError,
    TracedNetwork,
    block_graph,
    component_graph,
    network_graph,
)
from explorer.nets import ConvBnRelu, InceptionNetwork, is_within
from explorer.runtime.inside import part_names
from explorer.text.usertext import quoted

NODE_LEVELS = ("network", "component", "block", "unit", "part")


@dataclass(frozen=True)
class MapNode:
    name: str
    level: str  # one of NODE_LEVELS; "part": an output inside a block that is not a unit (concat, pool, linear 1x1...)
    title: str
    block: str | None  # the block it lies in (block, unit and part levels)
    component: str  # the component it lies in ("" for the network)
    trail: tuple[tuple[str, str], ...]  # (name, title) from the network down to this node's parent
    drawn: str = ""  # the node whose drawing shows this one: itself, or for a part the block or unit it is in
    kind: str = ""  # for an output inside a block that is no submodule: its key in explorer.runtime.inside.PART_KINDS


def resolve(model: InceptionNetwork, name: str) -> MapNode:
    """Where ``name`` sits in the network; :class:`ValueError` with a message for people if nowhere."""
    name = name.strip()
    top = (("", f"{model.config.network} ({model.config.variant})"),)
    if name in ("", "network"):
        return MapNode("", "network", top[0][1], None, "", (), "")
    components = {c.key: c for c in model.components}
    blocks = model.block_names()
    if name in components and name not in blocks:  # Mixed_5b's component and block share a name
        comp = components[name]
        single = _single_block(model, comp.modules)
        if single is not None:
            return resolve(model, single)
        return MapNode(name, "component", comp.title, None, name, top, name)
    block = next((b for b in blocks if is_within(name, b)), None)
    head = next((c for c in model.components if c.key == "head"), None)
    if block is None and head is not None and name in head.modules:
        return MapNode(name, "part", name, None, "head", (*top, ("head", head.title)), "head")
    if block is None:
        raise ValueError(
            f"unknown node {quoted(name, 'plain')}: no block, unit or component of the {model.config.variant} network"
        )
    comp = model.component_of(block)
    assert comp is not None  # every block belongs to a component
    trail = top if _single_block(model, comp.modules) == block else (*top, (comp.key, comp.title))
    block_title = f"{block} ({type(model.get_submodule(block)).__name__})"
    if name == block:
        return MapNode(name, "block", block_title, block, comp.key, trail, block)
    trail = (*trail, (block, block_title))
    rest = name[len(block) + 1 :]
    if rest in part_names(model.get_submodule(block)):  # concat, scaled residual...: only where the block has one
        return MapNode(name, "part", rest.replace("_", " "), block, comp.key, trail, block, rest)
    module = _submodule(model, name)
    if module is None:
        raise ValueError(f"unknown node {quoted(name, 'plain')}: {block} has no {quoted(rest, 'plain')}")
    if isinstance(module, ConvBnRelu):
        return MapNode(name, "unit", f"{rest} (conv-BN-ReLU)", block, comp.key, trail, name)
    owner, _, own = name.rpartition(".")
    if owner != block and isinstance(_submodule(model, owner), ConvBnRelu):  # a unit's conv, batch norm or ReLU
        unit_trail = (*trail, (owner, f"{owner[len(block) + 1 :]} (conv-BN-ReLU)"))
        return MapNode(name, "part", f"{own} ({type(module).__name__})", block, comp.key, unit_trail, owner)
    return MapNode(name, "part", f"{rest} ({type(module).__name__})", block, comp.key, trail, block)


def nearest(model: InceptionNetwork, name: str, component: str = "") -> MapNode:
    """The node of this network nearest to one of another network: ``name`` itself or the closest part it lies
    in (``repeat_1.12.branch1`` -> ``repeat_1.12`` -> ``repeat_1``), else the same component, else the whole."""
    parts = name.strip().split(".")
    for end in range(len(parts), 0, -1):
        try:
            return resolve(model, ".".join(parts[:end]))
        except ValueError:
            continue
    try:
        return resolve(model, component)
    except ValueError:
        return resolve(model, "")


def presentation_path(model: InceptionNetwork) -> list[str]:
    """The nodes a presenter steps through: the whole network, then each component in forward order, and
    for a run of identical blocks one of them right after it (a component that is one block is that block)."""
    path = [""]
    blocks = model.block_names()
    for comp in model.components:
        single = _single_block(model, comp.modules)
        if single is not None:
            path.append(single)
            continue
        path.append(comp.key)
        run = [b for b in blocks if (owner := model.component_of(b)) is not None and owner.key == comp.key]
        if len(run) > 1 and len({type(model.get_submodule(b)) for b in run}) == 1:
            path.append(run[0])
    return path


def position_on(model: InceptionNetwork, path: list[str], node: MapNode) -> int:
    """Where ``node`` is on a presentation path: itself, else its block, else the block that stands for its
    run (anywhere inside repeat_1.7 is the step of repeat_1.0), else its component, else the start."""
    for name in (node.name, node.block):
        if name in path:
            return path.index(name)
    if node.component in path:
        at = path.index(node.component)
        after = path[at + 1] if at + 1 < len(path) else ""
        owner = model.component_of(after) if node.block and after else None
        return at + 1 if owner is not None and owner.key == node.component else at
    return 0


def _single_block(model: InceptionNetwork, modules: tuple[str, ...]) -> str | None:
    """The block a component is, where it is one block (Mixed_5b, the reductions, Conv2d_7b)."""
    blocks = model.block_names()
    return modules[0] if len(modules) == 1 and modules[0] in blocks else None


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def drawing(traced: TracedNetwork, node: MapNode) -> graphviz.Digraph:
    """The Graphviz graph that shows ``node``: its level's drawing (a part: its block's)."""
    if node.level == "network":
        return network_graph(traced, "overview", direction="TB")
    if node.block is None:
        return component_graph(traced, node.component, direction="TB")
    return block_graph(traced, node.drawn, direction="BT")


# --------------------------------------------------------------------------------------------
# MapDrawing (Graphviz) and figure (plotly)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    target: str  # the map node it stands for ("" for the input and output terminals)
    label: str
    x: float  # centre, points
    y: float
    width: float
    height: float
    shape: str  # "box", "circle" or "oval"
    fill: str
    border: str
    dashed: bool


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]  # from tail to head, the last point at the arrow's tip
    label: str
    label_at: tuple[float, float] | None


@dataclass(frozen=True)
class Cluster:
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    colour: str
    label_at: tuple[float, float] | None = None  # the label's centre, where dot kept room for it


@dataclass(frozen=True)
class MapDrawing:
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    clusters: tuple[Cluster, ...]
    size: tuple[float, float]  # width, height, points
    title: str


def layout(graph: graphviz.Digraph) -> MapDrawing:
    """Positions of every node, edge and cluster, as Graphviz's ``dot`` lays the graph out."""
    try:
        data = json.loads(graph.pipe(format="json0"))
    except graphviz.ExecutableNotFound:
        raise GraphRenderError(DOT_MISSING) from None
    boxes, clusters = [], []
    for obj in data.get("objects", []):
        if "bb" in obj:  # a cluster
            x0, y0, x1, y1 = (float(v) for v in obj["bb"].split(","))
            label_at = tuple(float(v) for v in obj["lp"].split(",")) if "lp" in obj else None
            clusters.append(Cluster(obj.get("label", ""), (x0, y0, x1, y1), obj.get("color", "#bbbbbb"), label_at))
            continue
        x, y = (float(v) for v in obj["pos"].split(","))
        boxes.append(
            Box(
                obj.get("explorer", ""),
                obj.get("label", obj["name"]),
                x,
                y,
                float(obj.get("width", 0.75)) * 72,
                float(obj.get("height", 0.5)) * 72,
                obj.get("shape", "box"),
                obj.get("fillcolor", "#ffffff"),
                obj.get("color", "#555555"),
                "dashed" in obj.get("style", ""),
            )
        )
    lines = []
    for edge in data.get("edges", []):
        points, tip = [], None
        for token in edge.get("pos", "").split():
            if token.startswith("e,"):
                tip = tuple(float(v) for v in token[2:].split(","))
            elif not token.startswith("s,"):
                points.append(tuple(float(v) for v in token.split(",")))
        if tip is not None:
            points.append(tip)
        label_at = tuple(float(v) for v in edge["lp"].split(",")) if "lp" in edge else None
        lines.append(Line(tuple(points), edge.get("label", ""), label_at))
    x0, y0, x1, y1 = (float(v) for v in data["bb"].split(","))
    return MapDrawing(tuple(boxes), tuple(lines), tuple(clusters), (x1 - x0, y1 - y0), data.get("label", ""))


def _rgba(colour: str) -> str:
    """Graphviz's #rrggbb or #rrggbbaa as a CSS colour plotly takes."""
    colour = colour.lstrip("#")
    if len(colour) == 8:
        r, g, b, a = (int(colour[i : i + 2], 16) for i in range(0, 8, 2))
        return f"rgba({r},{g},{b},{a / 255:.2f})"
    return f"#{colour}" if len(colour) == 6 else "#ffffff"


def figure(drawn: MapDrawing, selected: str = "", hover: dict[str, str] | None = None) -> go.Figure:
    """The laid-out graph as a plotly figure: boxes as shapes, one clickable marker per node.

    A click selects a point whose ``customdata`` is the node's name; ``selected`` is outlined. The
    figure is as tall as the drawing at about a pixel per point, so that the labels fit their boxes.
    """
    hover = hover or {}
    fig = go.Figure()
    for cluster in drawn.clusters:
        x0, y0, x1, y1 = cluster.box
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": "#bbbbbb", "dash": "dot"}, layer="below")
        # where dot laid the label out (the corner it kept free of boxes and lines), not on the cluster's top edge
        x, y = cluster.label_at or ((x0 + x1) / 2, y1)
        anchor = {"y": y, "yanchor": "middle"} if cluster.label_at else {"y": y, "yanchor": "top"}
        text = cluster.label.replace("\\l", "<br>").removesuffix("<br>")
        fig.add_annotation(x=x, text=text, showarrow=False, font={"size": 10, "color": "#888888"}, **anchor)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for line in drawn.lines:
        for x, y in line.points:
            xs.append(x)
            ys.append(y)
        xs.append(None)
        ys.append(None)
        if len(line.points) >= 2:  # an arrowhead along the last segment
            (ax, ay), (x, y) = line.points[-2], line.points[-1]
            arrow = {"arrowhead": 2, "arrowsize": 1, "arrowwidth": 1.2, "arrowcolor": "#777777"}
            fig.add_annotation(x=x, y=y, ax=ax, ay=ay, axref="x", ayref="y", text="", showarrow=True, **arrow)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#999999", "width": 1.2}, hoverinfo="skip"))
    labelled = [line for line in drawn.lines if line.label and line.label_at]
    fig.add_trace(
        go.Scatter(
            x=[line.label_at[0] for line in labelled],
            y=[line.label_at[1] for line in labelled],
            text=[line.label for line in labelled],
            mode="text",
            textfont={"size": 9, "color": "#777777"},
            hoverinfo="skip",
        )
    )
    for box in drawn.boxes:
        chosen = bool(box.target) and box.target == selected
        kind = "circle" if box.shape in ("circle", "oval", "ellipse") else "rect"
        fig.add_shape(
            type=kind,
            x0=box.x - box.width / 2,
            x1=box.x + box.width / 2,
            y0=box.y - box.height / 2,
            y1=box.y + box.height / 2,
            fillcolor=_rgba(box.fill),
            layer="below",  # under the labels
            line={
                "color": "#d62728" if chosen else _rgba(box.border),
                "width": 4 if chosen else 1.2,
                "dash": "dash" if box.dashed and not chosen else "solid",
            },
        )
    clickable = [box for box in drawn.boxes if box.target]
    fig.add_trace(
        go.Scatter(
            x=[box.x for box in drawn.boxes],
            y=[box.y for box in drawn.boxes],
            text=[box.label.replace("\n", "<br>") for box in drawn.boxes],
            mode="text",
            textfont={"size": 11, "color": "#222222"},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(  # what a click selects: one square marker over each node, nearly transparent
            x=[box.x for box in clickable],
            y=[box.y for box in clickable],
            customdata=[box.target for box in clickable],
            hovertext=[hover.get(box.target, box.target) for box in clickable],
            hovertemplate="%{hovertext}<extra></extra>",
            mode="markers",
            marker={"symbol": "square", "size": 28, "color": "rgba(0,0,0,0.01)"},
            name="nodes",
        )
    )
    width, tall = drawn.size
    fig.update_layout(
        height=int(min(max(tall * 1.05, 420), 1600)),
        showlegend=False,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        plot_bgcolor="white",
        dragmode="pan",
        clickmode="event+select",
        xaxis={"visible": False, "range": [-10, width + 10]},
        yaxis={"visible": False, "range": [-10, tall + 10], "scaleanchor": "x", "scaleratio": 1},
    )
    return fig
