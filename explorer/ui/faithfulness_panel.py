"""Which of the maps shown is faithful for this image: deletion, insertion, ROAD and infidelity, on demand (a job
of the server's queue: seconds on a CPU), as a ranking and as the two curves (explorer.explain.faithfulness)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.explain import BASELINES, METRICS, Attribution, Explainer, MetricSettings, ranking
from explorer.explain.faithfulness import HIGHER_IS_BETTER
from explorer.runtime import Engine
from explorer.runtime.images import load_image
from explorer.ui.jobs import job_button
from explorer.ui.present import chart

EXPLAINED = {
    "deletion": "area under the class's probability as the map's pixels go, highest first (lower: more faithful)",
    "insertion": "area as they come back onto the baseline (higher: more faithful)",
    "road": "probability with the top 10-90 % of pixels removed and filled in from their neighbours, mean (lower)",
    "infidelity": "Captum's infidelity: the map against random perturbations' effect (lower)",
}


def faithfulness_panel(engine: Engine, maps_key: Hashable, data: bytes, attributions: Sequence[Attribution]) -> None:
    """The panel under the maps; ``maps_key`` is everything the maps depend on (network, image, class, settings)."""
    st.markdown(
        "**Which map is faithful here?** Take the pixels away in the order a map ranks them and watch the "
        "class's probability: a faithful map makes it fall fastest (Petsiuk et al. 2018; ROAD, Rong et al. "
        "2022; infidelity, Yeh et al. 2019)."
    )
    steps_column, baseline_column = st.columns(2)
    steps = steps_column.slider("Steps of the curves", 10, 100, 50, 10, key="faith_steps")
    baseline = baseline_column.selectbox(
        "Removed pixels become", BASELINES, index=BASELINES.index("blur"), key="faith_baseline",
        help="blur: the image blurred (sigma 10 pixels); mean: its mean colour; black",
    )  # fmt: skip
    settings = MetricSettings(steps=steps, baseline=baseline)
    methods = tuple(a.method for a in attributions)
    key = (maps_key, methods, settings)
    per_map = 0.5 if engine.device.type == "cuda" else 3 + 12 * steps / 50  # bench_faithfulness: H100; 2 cores
    # Infidelity's perturbed images (their share of a map's images) go through the network once for all the maps.
    images = 2 * (steps + 1) + len(settings.road_percentages) + settings.infidelity_samples
    shared = per_map * settings.infidelity_samples / images
    done = job_button(
        ("faithfulness", key),
        f"Measuring the faithfulness of {len(methods)} map{'s' if len(methods) != 1 else ''}",
        lambda report: Explainer(engine).faithfulness(load_image(data).image, attributions, METRICS, settings, report),
        estimate_s=shared + (per_map - shared) * max(len(methods), 1),
        button="Measure faithfulness",
        widget_key="faith_measure",
        failed="Faithfulness could not be measured",
        icon=":material/rule:",
        check=None if attributions else _no_maps,
    )
    if done is not None:
        st.session_state["faithfulness"] = (key, done.result)
    stored = st.session_state.get("faithfulness")
    if not stored or stored[0] != key:  # another image, class, map or setting: not this one's
        return
    found = stored[1]
    by_method = {f.method: f for f in found}
    rows = [
        {
            "method": row["method"],
            "mean rank": row["mean rank"],
            **{m: f"{by_method[row['method']].value(m):.4g} (#{row['ranks'][m]})" for m in METRICS},
        }
        for row in ranking(found, METRICS)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(" ".join(f"**{m}**: {EXPLAINED[m]}." for m in METRICS))
    curves = pd.DataFrame(
        [
            {"curve": curve, "method": f.method, "share of pixels": i / settings.steps, "probability": value}
            for f in found
            for curve in ("deletion", "insertion")
            for i, value in enumerate(f.curves[curve])
        ]
    )
    figure = px.line(
        curves,
        x="share of pixels",
        y="probability",
        color="method",
        facet_col="curve",
        title=f"The class's probability as pixels go (deletion) and come back (insertion), {baseline} baseline",
    )
    figure.update_layout(height=340, margin={"t": 50, "b": 10})
    chart(figure, key="faithfulness_chart")
    better = ", ".join(f"{m} {'higher' if HIGHER_IS_BETTER[m] else 'lower'}" for m in METRICS)
    st.caption(f"Better: {better}. The ranking holds for this image and class only; try others.")


def _no_maps() -> None:
    raise ValueError("no map is shown: choose a method above first")
