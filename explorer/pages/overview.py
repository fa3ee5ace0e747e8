"""The network at a glance: the chosen variant's components, shapes, parameters and MACs."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.model import paper_contradictions
from explorer.pages._common import summary_of, variant_sidebar
from explorer.summary import format_summary, shape_text

config = variant_sidebar()
summary = summary_of(config)

st.title("Inception-ResNet-v2 Explorer")
st.markdown(
    "Every number on these pages is computed from the PyTorch network itself, so it always matches "
    "the code. Pick a variant in the sidebar; the **released** one is the network people download."
)
st.page_link(
    str(Path(__file__).with_name("map.py")),
    label="Open the network map: click from the whole network down to one convolution, with an image's activations",
    icon=":material/account_tree:",
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
figure.update_layout(xaxis_tickformat=".0%", height=300, legend_title_text="")
st.plotly_chart(figure)

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
