"""A guided tour of the paper's story, step by step, on the network built from the code."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.analysis.summary import shape_text
from explorer.drawing.graph import block_graph, component_graph
from explorer.drawing.heatmaps import COLOUR_SCALE
from explorer.runtime import Engine, EngineIdentity, InferenceResult
from explorer.runtime.images import load_image, sample_path, sample_paths
from explorer.text.usertext import parse_int, shown
from explorer.ui.caches import counts_of, published_checks, trace_of
from explorer.ui.engines import engine_of
from explorer.ui.memory import budgeted
from explorer.ui.network import variant_sidebar
from explorer.ui.present import chart, step_controls

# Each step: (component key, the text for students, for Inception-v4 where it differs, words of claims to show).
# {input}, {grid}, {channels} and {classes} are filled in from the network: the component's output, the input size.
STEPS = (
    (
        "stem",
        "Plain convolutions and poolings shrink the {input}x{input} photo to a {grid} grid. Strided and 'valid' "
        "convolutions lose the border; the channels grow from 3 to a few hundred. No residuals yet. The "
        "released network then runs Mixed_5b, one Inception block without a residual, drawn below the stem.",
        "Plain convolutions, then three branching steps (a pool beside a strided conv, two conv towers, a "
        "strided conv beside a pool) shrink the {input}x{input} photo to a {grid} grid of {channels} channels.",
        ("breakdown",),
    ),
    (
        "block_a",
        "On the {grid} grid, three branches (1x1; 1x1 then 3x3; 1x1 then two 3x3) look at the input at "
        "different scales. Their outputs are concatenated, widened back by a 'linear' 1x1 convolution "
        "(no batch norm, no ReLU), scaled down and added to the block's input: a residual connection.",
        "On the {grid} grid, four branches (1x1; 1x1 then 3x3; 1x1 then two 3x3; average pool then 1x1) look "
        "at the input at different scales, and their outputs are concatenated. No residual connection: the "
        "block's input reaches the next block only through its branches.",
        ("repeated 5, 10 and 5", "filter expansion", "scaled by about"),
    ),
    (
        "reduction_a",
        "A reduction block halves the grid to {grid} with stride-2 convolutions and a max pool side by side, "
        "and concatenates them, so the channels grow while the grid shrinks. No residual connection here.",
        None,
        ("same reduction blocks",),
    ),
    (
        "block_b",
        "On the {grid} grid, a 7x7 view is built from a 1x7 and a 7x1 convolution (cheaper than 7x7). With "
        "over a thousand channels, the residual scale matters most here.",
        "On the {grid} grid, 7x7 views are built from 1x7 and 7x1 convolutions (cheaper than 7x7), one branch "
        "stacking two such pairs; four branches concatenated.",
        ("not used after the summations",),
    ),
    (
        "reduction_b",
        "Down to the {grid} grid: three stride-2 convolution branches and a max pool, concatenated.",
        "Down to the {grid} grid: two stride-2 convolution branches (one through a 1x7 and 7x1 pair) and a max "
        "pool, concatenated.",
        (),
    ),
    (
        "block_c",
        "On the {grid} grid, 1x3 and 3x1 convolutions. In the released network the last C block adds its "
        "residual unscaled and has no ReLU.",
        "On the {grid} grid, two branches end in a split pair: a 1x3 and a 3x1 convolution side by side on the "
        "same input, both kept. Six outputs are concatenated into {channels} channels.",
        ("Batch normalisation is used within",),
    ),
    (
        "head",
        "Global average pooling turns each channel into one number, dropout (in training) and one fully "
        "connected layer give the {classes} class scores. Then the question of how many layers that was.",
        None,
        ("about 164 layers",),
    ),
)


@budgeted("Running the network on the image...")
def run_sample(_engine: Engine, engine_key: EngineIdentity, sample: str) -> InferenceResult:
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
titles = {c.key: c.title.rsplit(" x", 1)[0] for c in counts.components}
options = [f"{i}. {titles.get(key, key)}" for i, (key, *_) in enumerate(STEPS, start=1)]
# One slider per kind of network: its step names differ (Inception-ResNet-A, Inception-A).
slider = "tour_step" if config.residual else "tour_step_v4"

# The step is in the address (?step=3), so a teacher's link opens the same step on every phone: the address
# sets the slider before it is drawn, and the slider and the buttons write the address.
asked = st.query_params.get("step")
if asked is not None:
    number = parse_int(asked)
    if number is not None and 1 <= number <= len(options):
        if st.session_state.get(slider) != options[number - 1]:  # a link or a button, not the slider
            st.session_state[slider] = options[number - 1]
    else:
        st.error(
            f"?step={shown(asked)} is not a step of the tour: there are steps 1 to {len(options)}.",
            icon=":material/link_off:",
        )
position = options.index(st.session_state.get(slider, options[0]))
st.query_params["step"] = str(position + 1)


def _slid() -> None:
    st.query_params["step"] = str(options.index(st.session_state[slider]) + 1)


def go_to(index: int) -> None:
    st.query_params["step"] = str(index + 1)
    st.rerun()


left, right = st.columns([3, 1])
left.select_slider("Step", options=options, key=slider, on_change=_slid)
sample = right.selectbox("Image", [p.stem for p in sample_paths()], key="tour_sample")
step_controls(position, len(options), go_to, [o.split(". ", 1)[1] for o in options])
key, text, text_v4, claim_words = STEPS[position]
component = next((c for c in counts.components if c.key == key), None)
if component is None:
    st.info(f"The {config.variant} network has no such component.")
    st.stop()

st.subheader(component.title)
# The step texts' sizes are filled in from the network as built: its input, this component's output.
shape = component.output_shape  # (1, C, H, W); the head's (1, classes)
st.markdown(
    (text if config.residual or text_v4 is None else text_v4).format(
        input=config.input_size,
        grid="x".join(map(str, shape[2:])),
        channels=f"{shape[1]:,}",
        classes=f"{config.num_classes:,}",
    )
)
kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in component.kinds.items() if n)
st.markdown(
    f"**Output** {shape_text(component.output_shape)} · **parameters** {component.params:,} "
    f"({component.params / counts.whole.params:.1%} of the network) · **layers** {kinds}."
)

graph_column, maps_column = st.columns([3, 2])
model = traced.model
blocks = [name for name in model.block_names() if model.component_of(name).key == key]
with graph_column:
    # The whole component: the stem's and the head's layers in a chain; a run of identical blocks as one of
    # them with the count; a single block (a reduction) as itself.
    if key in ("stem", "head"):
        st.graphviz_chart(component_graph(traced, key).source)
        extra = next((c for c in model.components if c.key == "mixed_5b"), None)
        if key == "stem" and extra is not None:
            st.caption("Then Mixed_5b, the released network's one Inception block without a residual:")
            st.graphviz_chart(block_graph(traced, extra.modules[0]).source)
    elif blocks:
        if len(blocks) > 1:
            st.caption(f"One of the {len(blocks)} identical blocks ({blocks[0]} ... {blocks[-1]}): each is drawn so.")
        st.graphviz_chart(block_graph(traced, blocks[0]).source)
with maps_column:
    result = run_sample(*engine_of(config), sample)
    maps = [b for b in result.blocks if model.component_of(b.name).key == key]
    if maps:
        chosen = maps[len(maps) // 2]
        figure = px.imshow(chosen.mean, color_continuous_scale=COLOUR_SCALE, title=f"{chosen.name}: channel mean")
        figure.update_layout(margin={"t": 40, "b": 10})
        chart(figure, height=330)
        st.image(result.image, caption=f"{sample}: what the network sees", width=220)

_, claims = published_checks()
relevant = [c for c in claims if any(word in c.claim for word in claim_words)]
if relevant:
    st.markdown("**Claims you may have read, checked on this step**")
    variant = config.variant if config.residual else "released"  # the claims are about Inception-ResNet-v2
    st.dataframe(
        pd.DataFrame(
            [
                {"claim": c.claim, "source": c.source_name, "verdict": v.verdict, "evidence": v.evidence}
                for c in relevant
                for v in c.verdicts
                if v.variant == variant
            ]
        ),
        hide_index=True,
    )
