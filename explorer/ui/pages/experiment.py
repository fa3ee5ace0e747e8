"""The residual-scaling experiment: why the residuals are scaled, shown on one image."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.lessons.experiments import Run, run_experiment, settings
from explorer.nets import VARIANTS
from explorer.nets.loading import load_weights, weights_identity
from explorer.nets.weights import RANDOM
from explorer.runtime.images import load_image, sample_path, sample_paths
from explorer.ui.engines import weights_in_use
from explorer.ui.network import variant_sidebar
from explorer.ui.present import chart

config = variant_sidebar()
weights = weights_in_use(VARIANTS["released"])
st.title("The residual-scaling experiment")
if not config.residual:
    st.info(
        f"{config.network} has no residual connections, so there is nothing to scale: this experiment runs on "
        "the released Inception-ResNet-v2 (its last setting, without shortcuts and unscaled, is the closest "
        "thing to an Inception network built from the same blocks).",
        icon=":material/info:",
    )
st.markdown(
    "The paper found that Inception-ResNets with more than about 1,000 filters **died** early in training "
    "unless each residual was scaled down by 0.1 to 0.3 before being added to its shortcut (Section 3.3). "
    "Here one image goes through the released network several times with the same weights: with its own "
    "scales, with no scaling, with scales you pick, and without shortcuts (the branches scaled as released, "
    "and unscaled). Watch how big the activations grow with depth, and how much each block adds compared "
    "with what it receives."
)
released_a = VARIANTS["released"].scales.a
with st.expander("What one forward pass can show, and what it cannot", expanded=True):
    st.markdown(
        "- **It can show** the mechanism the paper points at: without scaling, each residual adds about as much "
        "as its block receives, so the activations grow block after block; scaled, each block nudges its input.\n"
        "- **It cannot show** training instability itself. The paper's claim is about training: unscaled "
        "networks 'died' (their outputs went to zeros) after tens of thousands of steps. That needs gradients "
        "and many updates, not one image through fixed weights.\n"
        "- **Without shortcuts, scaled**: the signal shrinks by the scale at every block "
        f"({released_a} x {released_a} x ... on the A blocks), so "
        "that curve shows the scale, not the missing shortcut. **Without shortcuts, unscaled** is the fair "
        "comparison: a plain Inception network made of the same blocks, with the same weights."
    )

sample = st.selectbox("Image", [p.stem for p in sample_paths()], key="experiment_sample")
columns = st.columns(3)
custom = tuple(
    column.slider(f"Your scale for {letter} blocks", 0.0, 1.0, value, 0.05, key=f"scale_{letter}")
    for column, letter, value in zip(columns, "ABC", (0.3, 0.3, 0.3), strict=True)
)


@st.cache_data(show_spinner="Running the image through every setting (a few seconds each on a CPU)...")
def experiment(sample: str, custom: tuple[float, float, float], weights: str, identity: str) -> list[Run]:
    """Every setting's run, cached by the sample, the scales and the weights (their key and what they are now)."""
    return run_experiment(
        load_image(sample_path(sample)).image, lambda config: load_weights(weights, config), settings(custom)
    )


runs = experiment(sample, custom, weights, weights_identity(weights))
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
for measure, title in (
    ("std of the block output", "How large the activations are, block by block (log scale)"),
    ("residual / shortcut", "What each residual block adds, relative to what it receives"),
):
    shown_rows = frame.dropna(subset=[measure])  # the residual ratio exists for residual blocks only
    line = px.line(shown_rows, x="depth", y=measure, color="setting", hover_name="block", log_y=True, title=title)
    chart(line)

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
plain = next(run for run in runs if run.setting.label.startswith("no shortcuts, unscaled"))
growth_factor = unscaled.blocks[-1].stats.std / released.blocks[-1].stats.std
plain_factor = plain.blocks[-1].stats.std / released.blocks[-1].stats.std
st.markdown(
    f"Without scaling, the last block's output is **{growth_factor:,.0f} times** as large as with the released "
    "scales: every unscaled residual adds about as much as the block receives, so the sum keeps growing. "
    f"Without shortcuts and unscaled (a plain Inception network from the same blocks) it is **{plain_factor:,.2g} "
    "times** the released network's: the signal has to pass through every branch. Scaling keeps each block's "
    "contribution small, which is what kept the paper's training stable."
)
if weights == RANDOM:
    st.caption("With random weights the top-1 classes mean nothing; the growth of the activations does.")
else:
    st.markdown("**Top-1 under each setting**, with the trained weights:")
    for column, run in zip(st.columns(len(runs)), runs, strict=True):
        column.metric(run.setting.label, run.top1, f"{run.top1_probability:.1%}", delta_color="off")
