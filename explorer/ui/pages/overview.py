"""The opening page: how many layers (the figures people quote, each with what it counts), then the network at a
glance: the chosen variant's components, shapes, parameters and MACs."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.analysis.answer import headline, quoted_figures, unreproducible
from explorer.analysis.summary import format_summary, shape_text
from explorer.nets import paper_contradictions
from explorer.ui.caches import counts_of, published_checks, summary_of
from explorer.ui.network import variant_sidebar
from explorer.ui.present import chart

config = variant_sidebar()
summary = summary_of(config)

counts = counts_of(config)
pages = Path(__file__).parent

st.title("Inception-ResNet-v2 Explorer")
# The question the explorer exists for, answered first, from the network built from the code.
st.subheader(f"How many layers does {config.network} have?", anchor="how-many-layers")
st.markdown(f"#### {headline(counts)}")
st.markdown(
    "All four are right: each counts something else. Computed just now from the PyTorch network "
    + (
        "as released (the one people download)."
        if config.variant == "released"
        else f"({config.variant}, blocks {'/'.join(map(str, counts.repeats))})."
    )
)
for column, quoted in zip(st.columns(4), quoted_figures(counts), strict=True):
    with column.container(border=True):
        st.metric(quoted.word, quoted.value)
        st.caption(quoted.counts + (f". Published as **{quoted.reproduces}**." if quoted.reproduces else "."))
        st.page_link(
            pages / "counts.py",
            label="How it is counted",
            icon=":material/calculate:",
            query_params={"convention": quoted.convention},
        )
reconciliations, _ = published_checks()
for missing in unreproducible(reconciliations):
    st.info(
        f'**And {missing.value}?** "{missing.says}" ({missing.source}), quoted for the released '
        f"Inception-ResNet-v2: {missing.why}",
        icon=":material/help:",
    )
st.page_link(
    pages / "map.py",
    label="Open the network map: click from the whole network down to one convolution, with an image's activations",
    icon=":material/account_tree:",
)

st.divider()
st.subheader("The network at a glance")
st.markdown(
    "Every number on these pages is computed from the PyTorch network itself, so it always matches "
    "the code. Pick a variant in the sidebar; the **released** one is the network people download."
)
cols = st.columns(4)
cols[0].metric("Parameters", f"{summary.params / 1e6:.2f} M", help=f"{summary.params:,}")
cols[1].metric("MACs per image", f"{summary.macs / 1e9:.2f} G", help=f"{summary.macs:,} multiply-adds")
cols[2].metric("Input", shape_text(summary.input_shape))
cols[3].metric("Classes", summary.output_shape[-1])

table = pd.DataFrame(
    {
        "component": [c.title for c in summary.components],
        "modules": [", ".join(c.modules) for c in summary.components],
        "output (HxWxC)": [shape_text(c.output_shape) for c in summary.components],
        "parameters": [c.params for c in summary.components],
        "MACs": [c.macs for c in summary.components],
    }
)
st.subheader("Components")
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "MACs": st.column_config.NumberColumn(format="localized"),
    },
)

share = table.melt(id_vars="component", value_vars=["parameters", "MACs"], var_name="measure", value_name="count")
share["share"] = share["count"] / share.groupby("measure")["count"].transform("sum")
figure = px.bar(
    share,
    x="share",
    y="measure",
    color="component",
    orientation="h",
    text_auto=".0%",
    title="Where the parameters and the computation are",
    labels={"share": "share of the whole", "measure": ""},
)
# The legend below the bars, in rows: beside them, a 300-pixel chart showed 6 of the 9 components (the rest
# scrolled out of sight).
figure.update_layout(
    xaxis_tickformat=".0%",
    legend={"title_text": "", "orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
    margin={"b": 10},
)
chart(figure, height=440)

if config.variant == "paper-v2":
    st.subheader("Where the paper contradicts itself")
    st.markdown("The paper's Inception-ResNet-v2 widths do not add up; this is the consistent reading built here.")
    st.dataframe(
        pd.DataFrame(
            [
                {"where": c.where, "paper says": c.paper_says, "built": c.built, "why": c.why}
                for c in paper_contradictions()
            ]
        ),
        hide_index=True,
    )

with st.expander("Full torchinfo summary"):
    depth = st.slider("Module levels", 1, 4, 2)
    st.code(format_summary(summary, depth=depth), language=None)
