"""The concepts' pictures as plotly figures: a table of means as bars, the atlas as a zoomable picture whose
cells say what they hold on hover."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from explorer.concepts.atlas import AtlasLayout

BAR = "#2166ac"


def bars(names: list[str], means: list[float], counts: list[int] | None, title: str) -> go.Figure:
    """Horizontal bars, the first on top: each name's mean (and its count of images, when given)."""
    labels = [html.escape(n) for n in names]
    text = [f"{m:.3g}" + (f" ({c} images)" if counts else "") for m, c in zip(means, counts or means, strict=True)]
    figure = go.Figure(
        go.Bar(
            x=means,
            y=labels,
            orientation="h",
            marker_color=BAR,
            text=text,
            textposition="auto",
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=html.escape(title),
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"title": "mean of the channel's maximum"},
        margin={"l": 10, "r": 10, "b": 40},
        height=max(220, 28 * len(names) + 90),
    )
    return figure


def atlas_figure(atlas: AtlasLayout, picture: Image.Image, image_names: list[str]) -> go.Figure:
    """The atlas picture, zoomable, with one invisible marker per cell: hover names its class, its count and a
    few of its images; selecting one (a click) lets the page show the cell's images."""
    side = picture.width
    tile = side / atlas.grid
    x = [(cell.col + 0.5) * tile for cell in atlas.cells]
    y = [(cell.row + 0.5) * tile for cell in atlas.cells]
    hover = []
    for cell in atlas.cells:
        shown = ", ".join(html.escape(image_names[i].rsplit("/", 1)[-1]) for i in cell.images[:3])
        more = f" and {len(cell.images) - 3} more" if len(cell.images) > 3 else ""
        label = html.escape(cell.label) if cell.label else "no class"
        hover.append(
            f"<b>{label}</b> ({cell.label_count} of {cell.count} vectors)<br>"
            f"cell ({cell.row}, {cell.col}): {len(cell.images)} images<br>{shown}{more}"
        )
    figure = go.Figure(go.Image(z=np.asarray(picture), hoverinfo="skip"))
    figure.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            marker={"size": max(6.0, tile * 0.9), "symbol": "square", "opacity": 0.01, "color": "white"},
            hovertext=hover,
            hoverinfo="text",
            customdata=list(range(len(atlas.cells))),
            showlegend=False,
        )
    )
    figure.update_layout(
        title=f"Activation atlas of {atlas.block}: {len(atlas.cells)} cells from {atlas.points.shape[0]} vectors",
        xaxis={"visible": False, "range": [0, side]},
        yaxis={"visible": False, "range": [side, 0], "scaleanchor": "x"},
        margin={"l": 0, "r": 0, "b": 0},
        dragmode="zoom",
        clickmode="event+select",
        height=min(900, max(420, side)),
    )
    return figure
