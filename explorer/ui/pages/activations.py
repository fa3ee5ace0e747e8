"""What every block does with an image: top-5, activation maps, statistics across depth, attribution."""

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from explorer.drawing.figures import channel_grid
from explorer.drawing.heatmaps import COLOUR_SCALE, colourise, overlay, png_bytes
from explorer.explain import DEFAULTS, METHODS, THUMBNAIL, Attribution, Explainer, Settings, display, thumbnail
from explorer.nets.weights import RANDOM
from explorer.runtime import Engine, EngineIdentity, InferenceResult
from explorer.runtime.images import ImageError, LoadedImage, load_image
from explorer.text.usertext import shown
from explorer.ui.downloads import download, download_json
from explorer.ui.engines import engine_of, weights_in_use
from explorer.ui.faithfulness_panel import faithfulness_panel
from explorer.ui.memory import budgeted
from explorer.ui.network import variant_sidebar
from explorer.ui.pictures import pick_image
from explorer.ui.present import chart
from explorer.ui.state import image_digest, reset_when_changed

config = variant_sidebar()
engine, engine_key = engine_of(config)


@budgeted("Running the network...")
def run_image(
    _engine: Engine, engine_key: EngineIdentity, digest: str, _data: bytes, name: str
) -> tuple[InferenceResult | None, str | None]:
    """The result for one image, or an error text: cached by the engine's identity (network, weights, device,
    precision), the image's digest and its name (which the error text quotes)."""
    try:
        loaded: LoadedImage = load_image(_data, name)
    except ImageError as error:
        return None, str(error)
    return _engine.run(loaded.image, loaded.notes), None


st.title("Activations")
st.markdown(
    "Pick or upload an image: one forward pass gives the top-5 classes and, for every block, the mean and "
    "max over channels, the most active channels and statistics. Slide through the blocks in forward order."
)

compare = st.toggle("Compare two images side by side", key="compare")
slots = st.columns(2) if compare else [st.container()]
chosen = []
for index, column in enumerate(slots):
    with column:
        picked = pick_image(str(index), default_sample=index * 2)
        if picked is not None:
            chosen.append(picked)

results: list[tuple[str, bytes, InferenceResult]] = []
for name, data in chosen:
    result, error = run_image(engine, engine_key, image_digest(data), data, name)
    if error:
        st.error(shown(error, limit=400), icon=":material/image:")
    else:
        results.append((name, data, result))
if not results:
    st.info("Choose an image to see what the network does with it.")
    st.stop()


# ------------------------------------------------------------------------------ top-5 per image
def halves(column: DeltaGenerator) -> tuple[DeltaGenerator, DeltaGenerator]:
    """Two sub-columns for one image alone; one column per image when comparing (no deeper nesting)."""
    return column.columns(2) if len(results) == 1 else (column, column)


columns = st.columns(len(results))
for column, (name, _, result) in zip(columns, results, strict=True):
    picture, right = halves(column)
    with picture:
        st.image(
            result.image,
            caption=f"{shown(name)}: what the network sees ({result.image.shape[1]}x{result.image.shape[0]})",
        )
    with right:
        # Native bars rather than a chart: they show with the first paint, before the browser has
        # loaded the plotting library (seconds on a slow machine).
        st.markdown(f"**Top-5** ({shown(result.weights)})")
        for rank, prediction in enumerate(result.top5, start=1):
            st.progress(
                min(max(prediction.probability, 0.0), 1.0),
                text=f"{rank}. {shown(prediction.label)}: {prediction.probability:.1%}",
            )
        stages = ", ".join(f"{stage} {ms:.1f}" for stage, ms in result.timings_ms.items() if stage != "total")
        st.caption(f"On **{result.device}** in **{result.timings_ms['total']:.0f} ms** ({stages} ms).")
        for note in result.notes:
            st.caption(f"Note: {note}")

# ------------------------------------------------------------------------------ block scrubber
first = results[0][2]
names = [b.name for b in first.blocks]
st.subheader("Block by block")
# Another network starts at its own first residual block, not at a block it may lack.
reset_when_changed("block", names)
block_name = st.select_slider(
    "Block (forward order)", options=names, value="repeat.0" if "repeat.0" in names else names[0], key="block"
)
kind = st.radio("Map", ["channel mean", "channel max"], horizontal=True, key="map_kind")
columns = st.columns(len(results))
for column, (name, _, result) in zip(columns, results, strict=True):
    block = result.block(block_name)
    values = block.mean if kind == "channel mean" else block.max
    with column:
        channels, height, width = block.shape
        st.markdown(f"**{block_name}**: {height}x{width}x{channels}")
    picture, right = halves(column)
    with right:
        heat = px.imshow(values, color_continuous_scale=COLOUR_SCALE, title=f"{kind} ({height}x{width})")
        heat.update_layout(height=330, margin={"t": 40, "b": 10})
        chart(heat, key=f"heat_{name}")
    laid_over = overlay(result.image, values)
    with picture:
        st.image(laid_over, caption="overlaid on the image")
    with column:
        left, right = st.columns(2)
        map_name = f"{block_name}_{kind.removeprefix('channel ')}.png"
        # The picture shown, at the image's size: the map alone is in the JSON.
        download(left, "Map PNG", png_bytes(laid_over), map_name, key=f"png_{name}")
        download_json(right, "Result JSON", result.to_json(), f"{Path(name).stem}.json", key=f"json_{name}")

# ------------------------------------------------------------------------------ top-k channels
st.subheader("The most active channels")
block = first.block(block_name)
grid = channel_grid(
    block.top_maps,
    block.top_channels,
    f"{block_name}: the {len(block.top_channels)} channels with the highest mean ({shown(results[0][0], 'plotly')})",
)
chart(grid, key="channels")

# ------------------------------------------------------------------------------ statistics across depth
st.subheader("Statistics across depth")
rows = [
    {
        "image": shown(name, "plotly"),
        "depth": i,
        "block": b.name,
        "mean": b.stats.mean,
        "std": b.stats.std,
        "fraction of zeros": b.stats.zero_fraction,
        "residual / shortcut": b.stats.residual_ratio,
    }
    for name, _, result in results
    for i, b in enumerate(result.blocks)
]
stats = pd.DataFrame(rows)
left, right = st.columns(2)
for column, measure in zip(
    (left, right, left, right), ("mean", "std", "fraction of zeros", "residual / shortcut"), strict=True
):
    data = stats.dropna(subset=[measure])
    line = px.line(data, x="depth", y=measure, color="image", hover_name="block", markers=True, title=measure)
    line.update_layout(height=300, margin={"t": 40, "b": 10}, showlegend=len(results) > 1)
    chart(line, where=column, key=f"stat_{measure}")
st.caption(
    "Residual / shortcut: the size of what a residual block adds (after its scale) relative to what it receives. "
    "The paper scales residuals by 0.1 to 0.3 so that this stays small and training stays stable."
)

# ------------------------------------------------------------------------------ attribution
st.subheader("Why did it say that?")
if not st.toggle("Explain the prediction (attribution maps, by Captum)", key="show_cam"):
    st.stop()
labels = engine.labels or tuple(f"class {i}" for i in range(engine.config.num_classes))
name, data, result = results[0]
digest = image_digest(data)
pick_class, pick_methods = st.columns([1, 2])
reset_when_changed("cam_class", engine_key, digest)  # another image or network: its own top-1 class
class_index = pick_class.selectbox(
    "Class",
    range(len(labels)),
    index=first.top5[0].index,
    format_func=lambda i: f"{i}: {shown(labels[i], 'plain')}",
    key="cam_class",
    help="Defaults to the top-1 class of the first image",
)
methods = pick_methods.multiselect(
    "Methods",
    list(METHODS),
    default=["grad-cam", "guided-grad-cam", "saliency"],
    key="explain_methods",
    help="Integrated Gradients and occlusion run the network dozens of times: seconds on a GPU, tens of seconds "
    "on a CPU.",
)
with st.expander("Settings of the expensive methods"):
    knobs = st.columns(4)
    settings = Settings(
        steps=knobs[0].slider("Integrated Gradients: steps", 4, 64, DEFAULTS.steps, 4, key="ig_steps"),
        smooth=knobs[1].toggle("SmoothGrad over them", key="ig_smooth"),
        window=knobs[2].slider("Occlusion: patch (pixels)", 16, 128, DEFAULTS.window, 8, key="occ_window"),
        stride=knobs[3].slider("Occlusion: stride (pixels)", 8, 128, DEFAULTS.stride, 8, key="occ_stride"),
    )
st.caption(
    f"Grad-CAM and Guided Grad-CAM look at **{block_name}** (the block chosen above); the others at the input. "
    + " ".join(f"**{m}**: {METHODS[m].split(': ', 1)[1]}." for m in methods)
)


def attribution(data: bytes, method: str, block: str, class_index: int, progress) -> Attribution:
    """One method's map for one image, kept in this session (a progress bar cannot live in a shared cache)."""
    kept = st.session_state.setdefault("attributions", {})
    key = (engine_key, image_digest(data), method, block, class_index, settings)  # everything the map depends on
    if key not in kept:
        while len(kept) >= 48:  # the oldest go first
            kept.pop(next(iter(kept)))
        kept[key] = Explainer(engine).explain(load_image(data).image, method, block, class_index, settings, progress)
    return kept[key]


if methods:
    columns = st.columns(len(methods))
    for column, method in zip(columns, methods, strict=True):
        with column:
            bar = st.progress(0.0, text=f"{method}...")
            found = attribution(data, method, block_name, class_index, lambda f, t, bar=bar: bar.progress(f, text=t))
            bar.empty()
            st.image(overlay(result.image, display(found.heatmap)), caption=f"{method}: {found.seconds:.2f} s")
            if float(np.max(found.heatmap)) == 0.0:
                st.caption(
                    "Empty: nothing here speaks for this class (all gradient-weighted activations are negative)."
                )
    st.caption(
        f"{shown(name)}: why “{shown(labels[class_index])}”. Brighter: more important for that class, by each method."
    )
    shown_maps = [attribution(data, m, block_name, class_index, None) for m in methods]  # kept: no work again
    faithfulness_panel(engine, (engine_key, digest, block_name, class_index, settings), data, shown_maps)

st.markdown(
    "**The sanity check** (Adebayo et al., 2018): randomise the network's weights from the head down, a "
    "component at a time, and see whether each method's map changes. A method whose map barely changes "
    "explains the image, not the model."
)
if weights_in_use(config) == RANDOM:
    st.caption(
        "These are random weights, so the check compares one random network with another: it shows how each "
        "method behaves, not what a trained network has learnt. Load the trained weights for the real test."
    )
sanity_key = (engine_key, digest, tuple(methods), block_name, class_index, settings)
if st.button("Run the sanity check", icon=":material/fact_check:", disabled=not methods):
    bar = st.progress(0.0, text="Randomising, a component at a time...")
    original, steps = Explainer(engine).sanity_check(
        load_image(data).image, methods, block_name, class_index, settings, lambda f, t: bar.progress(f, text=t)
    )
    bar.empty()
    originals = {method: thumbnail(found.heatmap) for method, found in original.items()}
    st.session_state["sanity"] = (sanity_key, originals, steps)
stored = st.session_state.get("sanity")
if stored and stored[0] == sanity_key:  # a check of another image, class, block or network is not this one's
    _, originals, steps = stored
    frame = pd.DataFrame(
        [
            {"method": method, "step": i + 1, "randomised down to": s.randomised_from, "rank correlation": s.spearman}
            for method, found in steps.items()
            for i, s in enumerate(found)
        ]
    )
    resemblance = px.line(
        frame,
        x="randomised down to",
        y="rank correlation",
        color="method",
        markers=True,
        title=f"How much each map still resembles the original ({shown(name, 'plotly')}, class {class_index}, "
        f"CAMs at {block_name})",
    )
    resemblance.update_layout(height=360, yaxis_range=[-1, 1], margin={"t": 50, "b": 10})
    chart(resemblance, key="sanity_chart")
    st.caption(
        "Spearman's rank correlation between each method's map with the weights randomised from the head down to "
        "that component and its map with the weights as they were: near 1, the map ignores the weights."
    )
    st.markdown(
        "**Each map at each step**: left, the weights as they were; then randomised down to each component, "
        "with the rank correlation in brackets."
    )
    for method, found in steps.items():
        st.markdown(f"*{method}*")
        st.image(  # ten across a desk screen's main column; a phone wraps them
            [colourise(display(originals[method])), *(colourise(display(s.thumbnail)) for s in found)],
            caption=["original", *(f"{s.randomised_from} ({s.spearman:+.2f})" for s in found)],
            width=THUMBNAIL * 3 // 4,
        )
