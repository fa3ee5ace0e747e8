"""Plotly figures of inference results that several pages draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from explorer.drawing.heatmaps import COLOUR_SCALE

FACET_PREFIX = "facet_col="


def channel_grid(maps: np.ndarray, channels: Sequence[int], title: str, per_row: int = 4) -> go.Figure:
    """Some channels' maps ([k, H, W], most active first) in rows of ``per_row``, each titled with its channel.

    Plotly lays facets out from the top left but lists their titles from the bottom row up, so the titles
    are matched to the maps by the facet index each title carries, never by their order in the list.
    """
    figure = px.imshow(maps, facet_col=0, facet_col_wrap=per_row, color_continuous_scale=COLOUR_SCALE, title=title)
    for annotation in figure.layout.annotations:
        if annotation.text.startswith(FACET_PREFIX):
            annotation.text = f"channel {channels[int(annotation.text.removeprefix(FACET_PREFIX))]}"
    figure.update_layout(height=420)
    return figure
