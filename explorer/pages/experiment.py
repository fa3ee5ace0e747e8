"""The residual-scaling experiment: why the residuals are scaled, shown on one image."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.experiments import Run, run_experiment, settings
from explorer.images import load_image, sample_path, sample_paths
from explorer.model import VARIANTS
from explorer.pages._common import variant_sidebar, weights_in_use
from explorer.weights import RANDOM, load_weights

variant_sidebar()
weights = weights_in_use(VARIANTS["released"])
st.title("The residual-scaling experiment")
st.markdown(
    "The paper found that Inception-ResNets with more than about 1,000 filters **died** early in training "
    "unless each residual was scaled down by 0.1 to 0.3 before being added to its shortcut (Section 3.3). "
    "Here one image goes through the released network several times with the same weights: with its own "
    "scales, with no scaling, with scales you pick, and with the residual connections removed. Watch how "
    "big the activations grow with depth, and how much each block adds compared with what it receives."
)

sample = st.selectbox("Image", [p.stem for p in sample_paths()], key="experiment_sample")
columns = st.columns(3)
custom = tuple(
    column.slider(f"Your scale for {letter} blocks", 0.0, 1.0, value, 0.05, key=f"scale_{letter}")
    for column, letter, value in zip(columns, "ABC", (0.3, 0.3, 0.3), strict=True)
)


@st.cache_data(show_spinner="Running the image through every setting (a few seconds each on a CPU)...")
def experiment(sample: str, custom: tuple[float, float, float], weights: str) -> list[Run]:
    return run_experiment(
        load_image(sample_path(sample)).image, lambda config: load_weights(weights, config), settings(custom)
    )


runs = experiment(sample, custom, weights)
frame = pd.DataFrame(
    [
        {
            "setting": run.setting.label,
            "depth": b.depth,
            "block": b.block,
            "std of the block output": b.stats.std,
            "residual / shortcut": b.stats.residual_ratio,
            "fraction of zeros": b.stats.zero_fraction,
        }
        for run in runs
        for b in run.blocks
    ]
)
growth = px.line(
    frame,
    x="depth",
    y="std of the block output",
    color="setting",
    hover_name="block",
    log_y=True,
    title="How large the activations are, block by block (log scale)",
)
st.plotly_chart(growth)
ratio = px.line(
    frame.dropna(subset=["residual / shortcut"]),
    x="depth",
    y="residual / shortcut",
    color="setting",
    hover_name="block",
    log_y=True,
    title="What each residual block adds, relative to what it receives",
)
st.plotly_chart(ratio)

last = {run.setting.label: run.blocks[-1].stats.std for run in runs}
st.dataframe(
    pd.DataFrame(
        [
            {
                "setting": run.setting.label,
                "std at the last block": run.blocks[-1].stats.std,
                "top-1": f"{run.top1} ({run.top1_probability:.1%})",
            }
            for run in runs
        ]
    ),
    hide_index=True,
)
released, unscaled = runs[0], runs[1]
growth_factor = unscaled.blocks[-1].stats.std / released.blocks[-1].stats.std
st.markdown(
    f"Without scaling, the last block's output is **{growth_factor:,.0f} times** "
    "as large as with the released scales: every unscaled residual adds about as much as the block receives, "
    "so the sum keeps growing. Without residual connections the signal has to pass through every branch and "
    "can fade instead. Scaling keeps each block's contribution small, which is what kept the paper's training stable."
)
if weights == RANDOM:
    st.caption("With random weights the top-1 classes mean nothing; the growth of the activations does.")
