"""Where dot puts things: a first layout read back, for choices a drawing can only make once it is laid out."""

from __future__ import annotations

import json

import graphviz


def clusters_right_of(graph: graphviz.Digraph, node: str) -> frozenset[str]:
    """The clusters whose middle lies right of ``node`` once dot has laid ``graph`` out (none without dot)."""
    try:
        laid = json.loads(graph.pipe(format="json0"))
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
        return frozenset()
    objects = laid.get("objects", [])
    where = next((float(o["pos"].split(",")[0]) for o in objects if o.get("name") == node and "pos" in o), None)
    if where is None:
        return frozenset()
    found = set()
    for cluster in (o for o in objects if o.get("name", "").startswith("cluster_") and "bb" in o):
        x0, _, x1, _ = (float(v) for v in cluster["bb"].split(","))
        if (x0 + x1) / 2 > where:
            found.add(cluster["name"])
    return frozenset(found)
