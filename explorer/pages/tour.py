"""A guided tour of the paper's story, step by step, on the network built from the code."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.graph import block_graph
from explorer.heatmaps import COLOUR_SCALE
from explorer.images import load_image, sample_path, sample_paths
from explorer.inference import Engine, InferenceResult
from explorer.model import VARIANTS
from explorer.pages._common import counts_of, engine_of, published_checks, trace_of, variant_sidebar
from explorer.summary import shape_text

# Each step: (component key, a representative block, the text for students, words of claims to show).
STEPS = {
    "1. Stem": (
        "stem",
        None,
        "Plain convolutions and poolings shrink the 299x299 photo to a 35x35 grid. Strided and 'valid' "
        "convolutions lose the border; the channels grow from 3 to a few hundred. No residuals yet.",
        ("breakdown",),
    ),
    "2. Inception-ResNet-A": (
        "block_a",
        "repeat.0",
        "On the 35x35 grid, three branches (1x1; 1x1 then 3x3; 1x1 then two 3x3) look at the input at "
        "different scales. Their outputs are concatenated, widened back by a 'linear' 1x1 convolution "
        "(no batch norm, no ReLU), scaled down and added to the block's input: a residual connection.",
        ("repeated 5, 10 and 5", "filter expansion", "scaled by about"),
    ),
    "3. Reduction-A": (
        "reduction_a",
        "mixed_6a",
        "A reduction block halves the grid to 17x17 with stride-2 convolutions and a max pool side by side, "
        "and concatenates them, so the channels grow while the grid shrinks. No residual connection here.",
        ("same reduction blocks",),
    ),
    "4. Inception-ResNet-B": (
        "block_b",
        "repeat_1.0",
        "On the 17x17 grid, a 7x7 view is built from a 1x7 and a 7x1 convolution (cheaper than 7x7). With "
        "over a thousand channels, the residual scale matters most here.",
        ("not used after the summations",),
    ),
    "5. Reduction-B": (
        "reduction_b",
        "mixed_7a",
        "Down to an 8x8 grid: three stride-2 convolution branches and a max pool, concatenated.",
        (),
    ),
    "6. Inception-ResNet-C": (
        "block_c",
        "repeat_2.0",
        "On the 8x8 grid, 1x3 and 3x1 convolutions. In the released network the last C block adds its "
        "residual unscaled and has no ReLU.",
        ("Batch normalisation is used within",),
    ),
    "7. Head": (
        "head",
        None,
        "Global average pooling turns each channel into one number, dropout (in training) and one fully "
        "connected layer give the 1,000 class scores. Then the question of how many layers that was.",
        ("about 164 layers",),
    ),
}


@st.cache_data(show_spinner="Running the network on the image...", max_entries=32)
def run_sample(_engine: Engine, engine_key: tuple, sample: str) -> InferenceResult:
    """Cached per engine and image: stepping through the tour does not recompute the maps."""
    return _engine.run(load_image(sample_path(sample)).image)


config = variant_sidebar()
counts = counts_of(config)
traced = trace_of(config)
st.title("A guided tour")
st.markdown(
    "The paper's story in seven steps, told on the network chosen in the sidebar. Every number, shape and "
    "picture comes from the code; the maps come from the image you pick."
)
left, right = st.columns([3, 1])
step = left.select_slider("Step", options=list(STEPS), key="tour_step")
sample = right.selectbox("Image", [p.stem for p in sample_paths()], key="tour_sample")
key, block, text, claim_words = STEPS[step]
component = next((c for c in counts.components if c.key == key), None)
if component is None:
    st.info(f"The {config.variant} network has no such component.")
    st.stop()

st.subheader(component.title)
st.markdown(text)
kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in component.kinds.items() if n)
st.markdown(
    f"**Output** {shape_text(component.output_shape)} · **parameters** {component.params:,} "
    f"({component.params / counts.whole.params:.1%} of the network) · **layers** {kinds}."
)

graph_column, maps_column = st.columns([3, 2])
names = traced.model.block_names()
shown = block if block in names else component.modules[-1]
with graph_column:
    if shown in names:
        st.graphviz_chart(block_graph(traced, shown).source)
with maps_column:
    result = run_sample(*engine_of(config), sample)
    maps = [b for b in result.blocks if b.name.split(".")[0] in component.modules]
    if maps:
        chosen = maps[len(maps) // 2] if shown not in {b.name for b in maps} else result.block(shown)
        figure = px.imshow(chosen.mean, color_continuous_scale=COLOUR_SCALE, title=f"{chosen.name}: channel mean")
        figure.update_layout(height=330, margin={"t": 40, "b": 10})
        st.plotly_chart(figure)
        st.image(result.image, caption=f"{sample}: what the network sees", width=220)

_, claims = published_checks()
relevant = [c for c in claims if any(word in c.claim for word in claim_words)]
if relevant:
    st.markdown("**Claims you may have read, checked on this step**")
    variant = config.variant if config.variant in VARIANTS else "released"
    st.dataframe(
        pd.DataFrame(
            [
                {"claim": c.claim, "source": c.source, "verdict": v.verdict, "evidence": v.evidence}
                for c in relevant
                for v in c.verdicts
                if v.variant == variant
            ]
        ),
        hide_index=True,
    )
