"""A circuit drawn as Distill's circuit figures draw one: the inputs on the left, the channel in the middle, where
it goes on the right; each edge as wide as its score's size and coloured by its sign. Also an expanded-weights
kernel as a small picture in the same two colours.

Takes plain values (labels and scores), so the app and the CLI draw the same figure from a circuit's JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import graphviz
import numpy as np
from PIL import Image

#: Drives (a positive score) and holds back (a negative one): a pair that reads apart for colour-blind eyes too.
DRIVES = "#2166ac"
HOLDS_BACK = "#b2182b"
WIDEST = 8.0  # points: the edge of the largest |score| in a figure


def sign_colour(score: float) -> str:
    return DRIVES if score >= 0 else HOLDS_BACK


def circuit_graph(
    target: str,
    inputs: Sequence[tuple[str, float]],
    outputs: Sequence[tuple[str, float]] = (),
    classes: Sequence[tuple[str, float]] = (),
    links: dict[str, str] | None = None,
) -> graphviz.Digraph:
    """``inputs`` ("block ch", score) into ``target``; ``outputs`` and ``classes`` it feeds, with their scores.
    ``links``: a URL for a node's label (an SVG's nodes become links)."""
    graph = graphviz.Digraph("circuit", graph_attr={"rankdir": "LR", "bgcolor": "transparent", "nodesep": "0.12"})
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize="11")
    largest = max([abs(s) for _, s in [*inputs, *outputs, *classes]] or [1.0]) or 1.0
    links = links or {}

    def node(name: str, label: str, **extra: str) -> None:
        url = links.get(label)
        graph.node(name, label, **({"URL": url, "target": "_top"} if url else {}), **extra)

    node("target", target, fillcolor="#f2f2f2", penwidth="2")
    for group, items, inward in (("in", inputs, True), ("out", outputs, False), ("class", classes, False)):
        for i, (label, score) in enumerate(items):
            name = f"{group}{i}"
            node(name, label, **({"shape": "ellipse"} if group == "class" else {}))
            width = f"{max(0.5, WIDEST * abs(score) / largest):.2f}"
            ends = (name, "target") if inward else ("target", name)
            graph.edge(*ends, penwidth=width, color=sign_colour(score), arrowsize="0.5", tooltip=f"{score:+.4g}")
    return graph


def kernel_picture(kernel: np.ndarray, scale: float, size: int = 64) -> Image.Image:
    """A (h, w) kernel as a picture: blue where it drives, red where it holds back, white at zero, ``scale``
    the value drawn at full strength (one scale for kernels meant to be compared)."""
    unit = np.clip(np.asarray(kernel, np.float32) / (scale or 1.0), -1.0, 1.0)[..., None]
    white = np.ones(3, np.float32)
    drives = np.array([int(DRIVES[i : i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)
    holds = np.array([int(HOLDS_BACK[i : i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)
    rgb = np.where(unit >= 0, white + unit * (drives - white), white - unit * (holds - white))
    picture = Image.fromarray((rgb * 255).round().astype(np.uint8))
    height, width = kernel.shape
    picture = picture.resize((size, max(1, round(size * height / width))), Image.Resampling.NEAREST)
    framed = Image.new("RGB", (picture.width + 2, picture.height + 2), (190, 190, 190))  # white reads on white too
    framed.paste(picture, (1, 1))
    return framed
