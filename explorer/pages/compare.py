"""released, paper-v2 and paper-v1 side by side, with the differences highlighted."""

import pandas as pd
import streamlit as st

from explorer.graph import network_graph
from explorer.model import VARIANT_DESCRIPTIONS, VARIANTS, paper_contradictions
from explorer.pages._common import cached_counts, cached_trace, variant_sidebar
from explorer.summary import shape_text

variant_sidebar()
st.title("Compare the variants")
st.markdown(
    "The network people download (**released**) is not the one the paper draws. Every number below is "
    "computed from the three networks built from their tables; rows where the variants differ are highlighted."
)

names = list(VARIANTS)
counts = {v: cached_counts(v, VARIANTS[v].repeats.as_tuple()) for v in names}

rows: dict[str, dict[str, str]] = {}
rows["parameters"] = {v: f"{c.whole.params:,}" for v, c in counts.items()}
rows["MACs per image"] = {v: f"{c.whole.macs / 1e9:.2f} G" for v, c in counts.items()}
rows["blocks A / B / C"] = {v: " / ".join(map(str, c.repeats)) for v, c in counts.items()}
for convention in counts["released"].conventions:
    rows[convention.name] = {v: str(c.convention(convention.key).total) for v, c in counts.items()}
for key, label in (
    ("stem", "stem output"),
    ("mixed_5b", "Mixed_5b output"),
    ("block_a", "A blocks output"),
    ("block_b", "B blocks output"),
    ("block_c", "C blocks output"),
    ("final_conv", "final 1x1 conv output"),
):
    rows[label] = {
        v: next((shape_text(comp.output_shape) for comp in c.components if comp.key == key), "none")
        for v, c in counts.items()
    }
table = pd.DataFrame(rows).T[names]


def highlight(row: pd.Series) -> list[str]:
    differs = row.nunique() > 1
    return ["background-color: rgba(255, 200, 0, 0.25)" if differs else "" for _ in row]


st.dataframe(table.style.apply(highlight, axis=1), height=36 * (len(table) + 1))

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

st.subheader("The three overviews")
columns = st.columns(3)
for column, variant in zip(columns, names, strict=True):
    config = VARIANTS[variant]
    traced = cached_trace(variant, config.repeats.as_tuple())
    with column:
        st.markdown(f"**{variant}**: {VARIANT_DESCRIPTIONS[variant]}")
        st.graphviz_chart(network_graph(traced, "overview").source)
