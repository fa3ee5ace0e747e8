"""Where Graphviz put things: the boxes of cluster labels, nodes and edge labels, and the edges' curves, read
from ``dot -Tjson`` (points, y upwards), to find what a cluster's label runs into."""

from __future__ import annotations

import json
import subprocess

import numpy as np


def _text_boxes(ops: list[dict] | None) -> list[tuple[float, float, float, float, str]]:
    size, boxes = 14.0, []
    for op in ops or []:
        if op["op"] == "F":
            size = op["size"]
        elif op["op"] == "T":
            (x, y), width = op["pt"], op["width"]
            left = {"c": x - width / 2, "l": x, "r": x - width}[op["align"]]
            boxes.append((left, y - 0.25 * size, left + width, y + 0.8 * size, op["text"]))
    return boxes


def _curves(ops: list[dict] | None) -> list[np.ndarray]:
    found = []
    for op in ops or []:
        if op["op"] in ("b", "B"):
            points = np.array(op["points"], dtype=float)
            t = np.linspace(0, 1, 40)[:, None]
            for a, b, c, d in (points[i : i + 4] for i in range(0, len(points) - 3, 3)):
                found.append((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d)
    return found


def label_collisions(source: str) -> list[tuple[str, str, str]]:
    """(cluster label, "node" / "edge label" / "edge", what) for everything a cluster's label overlaps."""
    layout = json.loads(
        subprocess.run(["dot", "-Tjson"], input=source, capture_output=True, text=True, check=True).stdout
    )
    objects = layout.get("objects", [])
    nodes = []
    for node in (o for o in objects if "pos" in o and "bb" not in o):
        x, y = map(float, node["pos"].split(","))
        half_w, half_h = float(node["width"]) * 36, float(node["height"]) * 36  # inches to points, halved
        nodes.append((x - half_w, y - half_h, x + half_w, y + half_h, node["name"]))
    edges = layout.get("edges", [])
    edge_labels = [box for edge in edges for box in _text_boxes(edge.get("_ldraw_"))]
    curves = [_curves(edge.get("_draw_")) for edge in edges]
    found = []
    for cluster in (o for o in objects if o.get("name", "").startswith("cluster")):
        for label in _text_boxes(cluster.get("_ldraw_")):
            text = label[4]
            found += [(text, "node", box[4]) for box in nodes if _overlap(label, box)]
            found += [(text, "edge label", box[4]) for box in edge_labels if _overlap(label, box)]
            left, bottom, right, top = label[:4]
            for parts in curves:
                inside = [
                    ((p[:, 0] >= left) & (p[:, 0] <= right) & (p[:, 1] >= bottom) & (p[:, 1] <= top)).any()
                    for p in parts
                ]
                if any(inside):
                    found.append((text, "edge", ""))
    return found


def _overlap(a: tuple, b: tuple) -> bool:
    return not (b[2] <= a[0] or b[0] >= a[2] or b[3] <= a[1] or b[1] >= a[3])
