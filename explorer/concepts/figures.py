"""The concepts' pictures as plotly figures: a table of means as bars, the atlas as a zoomable picture whose
cells say what they hold on hover."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from explorer.concepts.atlas import AtlasLayout
from explorer.concepts.tcav import ConceptScore

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


def tcav_figure(scores: list[ConceptScore], class_name: str) -> go.Figure:
    """TCAV scores as bars, a group per block and a colour per concept; bars that are not significant are grey and
    pale, their p-values and CAV accuracy on hover."""
    figure = go.Figure()
    palette = ["#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f"]
    for number, concept in enumerate(dict.fromkeys(s.concept for s in scores)):
        mine = [s for s in scores if s.concept == concept]
        colour = palette[number % len(palette)]
        figure.add_trace(
            go.Bar(
                name=html.escape(concept),
                x=[s.block for s in mine],
                y=[s.score for s in mine],
                marker={
                    "color": [colour if s.significant else "#bdbdbd" for s in mine],
                    "opacity": [1.0 if s.significant else 0.55 for s in mine],
                    "line": {"color": colour, "width": 2},
                },
                text=["" if s.significant else "n.s." for s in mine],
                textposition="outside",
                customdata=[
                    [s.p_value, s.accuracy, "significant" if s.significant else "not significant"] for s in mine
                ],
                hovertemplate=(
                    f"{html.escape(concept)} at %{{x}}: score %{{y:.2f}}<br>p %{{customdata[0]:.3g}}, "
                    "CAV accuracy %{customdata[1]:.2f}<br>%{customdata[2]}<extra></extra>"
                ),
            )
        )
    figure.add_hline(y=0.5, line_dash="dot", line_color="#636363")
    figure.update_layout(
        title=html.escape(f"TCAV scores for {class_name}: the share of its images a concept pushes towards it"),
        barmode="group",
        yaxis={"range": [0, 1.1], "title": "TCAV score"},
        xaxis={"title": "block"},
        legend={"title": "concept (grey: not significant)"},
        margin={"l": 10, "r": 10, "b": 40},
        height=360,
    )
    return figure
