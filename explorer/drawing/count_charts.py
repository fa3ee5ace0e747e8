"""The layer counts as bar charts: one convention component by component, and what each component is made of."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from explorer.analysis.counting import LayerCounts
from explorer.analysis.tracing import KINDS
from explorer.drawing.palette import COMPONENT_COLOURS


def convention_bars(counts: LayerCounts, convention: str) -> go.Figure:
    """The convention named ``convention``'s count in each component, coloured as the map colours them."""
    chosen = next(c for c in counts.conventions if c.name == convention)
    titles = {c.key: c.title for c in counts.components}
    per_component = pd.DataFrame(
        {"component": [titles[k] for k in chosen.per_component], "count": list(chosen.per_component.values())}
    )
    bars = px.bar(
        per_component,
        x="count",
        y="component",
        orientation="h",
        color="component",
        color_discrete_map={c.title: COMPONENT_COLOURS[c.key] for c in counts.components},
        text="count",
        title=f"{chosen.name}: {chosen.total} in all",
    )
    bars.update_layout(
        showlegend=False, yaxis={"categoryorder": "array", "categoryarray": per_component["component"][::-1]}
    )
    return bars


def kinds_bars(counts: LayerCounts) -> go.Figure:
    """Each component's layers stacked by kind (convolution, batch norm, activation, ...)."""
    kinds = pd.DataFrame(
        [
            {"component": comp.title, "kind": KINDS[kind], "layers": n}
            for comp in counts.components
            for kind, n in comp.kinds.items()
            if n
        ]
    )
    return px.bar(
        kinds,
        x="component",
        y="layers",
        color="kind",
        title="What each component is made of",
        category_orders={"component": [c.title for c in counts.components], "kind": list(KINDS.values())},
    )
