"""The four networks side by side: the paper's comparison stated, cells shaded by their distance to released."""

import pandas as pd
import streamlit as st

from explorer.analysis.comparison import comparison_rows, paper_comparison
from explorer.drawing.graph import network_graph
from explorer.nets import VARIANT_DESCRIPTIONS, VARIANTS, paper_contradictions
from explorer.ui.caches import cached_counts, cached_trace
from explorer.ui.network import variant_sidebar

variant_sidebar()
st.title("Compare the variants")
st.markdown(
    "The paper's argument is a comparison: **Inception-v4**, a pure Inception network, against "
    "**Inception-ResNet-v2**, the same kind of blocks with residual connections, at about the same cost. "
    "And the network people download (**released**) is not the one the paper draws. Every number below is "
    "computed from the four networks built from their tables."
)

names = list(VARIANTS)
counts = {v: cached_counts(v, VARIANTS[v].repeats.as_tuple()) for v in names}

st.subheader("The paper's comparison")
for line in paper_comparison(counts):
    st.markdown(f"- {line}")
st.caption(
    "The paper's claim is about training: with residual connections Inception-ResNet-v2 trains faster to a "
    "similar or better accuracy (its Figures 24-26). Cost, parameters and depth are what a network's code "
    "can show; how fast it learns takes training runs."
)

st.subheader("Every figure, against the released network")
rows = comparison_rows(counts, reference="released")
table = pd.DataFrame({label: {v: cell.text for v, cell in cells.items()} for label, cells in rows.items()}).T[names]
distance = pd.DataFrame({label: {v: cell.distance for v, cell in cells.items()} for label, cells in rows.items()}).T[
    names
]


def shade(column: pd.Series) -> list[str]:
    return [f"background-color: rgba(230, 120, 0, {0.45 * d:.2f})" if d else "" for d in distance[column.name]]


st.dataframe(table.style.apply(shade, axis=0), height=36 * (len(table) + 1))
st.caption(
    "Ratios in brackets are to the released network. The darker a cell, the further it is from the "
    "released network's (no shade within 10%; darkest at half or double); a shape is shaded where it differs."
)

st.subheader("Where the paper contradicts itself")
st.dataframe(
    pd.DataFrame(
        [
            {"variant": c.variant, "where": c.where, "paper says": c.paper_says, "built": c.built, "why": c.why}
            for c in paper_contradictions()
        ]
    ),
    hide_index=True,
)

st.subheader("The four overviews")
columns = st.columns(len(names))
for column, variant in zip(columns, names, strict=True):
    config = VARIANTS[variant]
    traced = cached_trace(variant, config.repeats.as_tuple())
    with column:
        st.markdown(f"**{variant}**: {VARIANT_DESCRIPTIONS[variant]}")
        st.graphviz_chart(network_graph(traced, "overview").source)
