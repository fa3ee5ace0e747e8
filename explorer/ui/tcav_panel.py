"""Does the network use a concept for a class? TCAV on the Classes page (explorer.concepts.tcav): the class's
images and random counter-examples from the index in use, concepts made here (stripes, dots) or uploaded; a job
of the server's queue; bars per block, the ones that are not significant grey."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from explorer.channels.index.reader import ChannelIndex
from explorer.concepts.concept_sets import class_files, read_images, run_tcav
from explorer.concepts.examples import made
from explorer.concepts.figures import tcav_figure
from explorer.concepts.tcav import MIN_IMAGES, MIN_RUNS, ConceptScore
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.images import ImageError, load_image
from explorer.runtime.jobs import Report
from explorer.runtime.memory import SizedCache
from explorer.text.usertext import shown
from explorer.ui.jobs import job_button
from explorer.ui.memory import server_memory
from explorer.ui.pictures import UPLOAD_TYPES
from explorer.ui.present import chart
from explorer.ui.state import image_digest

MADE_HERE = ("stripes", "dots")
SEED = 0


@st.cache_resource(show_spinner=False)
def server_tcav() -> SizedCache:
    """TCAV results by everything they depend on: one per server, in its memory budget."""
    return SizedCache(server_memory())


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def seconds_for(engine: Engine, per_set: int, concepts: int, random_images: int) -> float:
    """Forwards of the random sets' pool (once, whatever the runs) and each concept's set, the class's images
    thrice (a backward); per image: H100 5 ms, 2 CPU cores 0.13 s."""
    images = random_images + per_set * (concepts + 3)
    return 3 + images * (0.005 if engine.device.type == "cuda" else 0.13)


def tcav_section(
    engine: Engine, engine_key: EngineIdentity, index: ChannelIndex, source: str, class_name: str, blocks: list[str]
) -> None:
    st.markdown(
        f"For **{shown(class_name)}**: TCAV (Kim et al. 2018) finds a concept's "
        "direction in a block's activations (a linear classifier between its images and random ones) and counts "
        "the class's images whose class score rises along it; against random directions, over "
        f"{MIN_RUNS} random sets, it says whether that share means anything."
    )
    mine, others = class_files(index, class_name, source)
    if len(mine) < MIN_IMAGES:
        st.info(f"The index has {len(mine)} images of {shown(class_name)}: TCAV needs at least {MIN_IMAGES}.")
        return
    labels = list(engine.labels or [])
    left, right = st.columns(2)
    target = left.selectbox(
        "The network's class",
        range(engine.config.num_classes),
        index=labels.index(class_name) if class_name in labels else 0,
        format_func=lambda i: f"{i}: {engine.label(i)}",
        key="tcav_target",
        help="The output whose score TCAV follows; the page's class gives the images",
    )
    chosen = right.multiselect(
        "Blocks", blocks, default=[blocks[round(0.6 * (len(blocks) - 1))], blocks[-1]], key="tcav_blocks"
    )
    left, right = st.columns(2)
    made_here = left.multiselect("Concepts made here", MADE_HERE, default=list(MADE_HERE), key="tcav_made")
    gpu = engine.device.type == "cuda"
    per_set = right.select_slider("Images a set", [10, 20, 30, 50], value=50 if gpu else 20, key="tcav_per_set")
    with st.expander("Your own concept"):
        own_name = st.text_input("Its name", key="tcav_own_name", max_chars=40).strip()
        uploads = st.file_uploader(
            f"Its images (at least {MIN_IMAGES})", type=UPLOAD_TYPES, accept_multiple_files=True, key="tcav_own"
        )
    own = {own_name or "your concept": [u.getvalue() for u in uploads]} if uploads else {}
    count = len(made_here) + len(own)
    pool = others if len(others) >= 2 * per_set else []  # else random images made here
    random_images = min(len(pool), 4 * per_set) if pool else 2 * per_set
    created = index.manifest.get("created", "")
    digests = tuple(image_digest(d) for data in own.values() for d in data)
    key = (engine_key, str(index.folder), created, source, class_name, target, tuple(chosen), tuple(made_here))
    key += (tuple(own), digests, per_set, MIN_RUNS, SEED)
    results = server_tcav()

    def check() -> None:
        if not chosen:
            raise ValueError("choose a block")
        if not count:
            raise ValueError("choose a concept made here or upload your own")
        for name, data in own.items():
            if len(data) < MIN_IMAGES:
                raise ValueError(f"{name}: {len(data)} images; a concept needs at least {MIN_IMAGES}")
            for number, one in enumerate(data):
                try:
                    load_image(one)
                except ImageError as error:
                    raise ValueError(f"{name}: image {number + 1}: {error}") from None

    def work(report: Report) -> list[ConceptScore]:
        def compute() -> list[ConceptScore]:
            images, _ = read_images(mine, per_set, SEED)
            concepts = {name: made(name, per_set, SEED + k) for k, name in enumerate(made_here, start=1)}
            concepts |= {name: [load_image(d).image for d in data] for name, data in own.items()}
            randoms = read_images(pool, random_images, SEED)[0] if pool else made("random", random_images, SEED)
            return run_tcav(engine, chosen, target, images, concepts, randoms, MIN_RUNS, per_set, SEED, report)

        return results.get(key, compute)

    if key in results:
        scores = results.get(key, list)
    else:
        done = job_button(
            ("tcav", *key),
            f"TCAV of {plural(count, 'concept')} at {plural(len(chosen), 'block')}",
            work,
            estimate_s=seconds_for(engine, per_set, count, random_images),
            button="Test the concepts",
            widget_key="tcav_run",
            failed="TCAV could not be run",
            icon=":material/science:",
            check=check,
        )
        if done is None:
            return
        scores = done.result
    _show(scores, engine.label(target), min(len(mine), per_set), len(pool))


def _show(scores: Sequence[ConceptScore], class_name: str, images: int, pool: int) -> None:
    chart(tcav_figure(list(scores), class_name), key="tcav_chart")
    rows = [
        {
            "concept": s.concept,
            "block": s.block,
            "score": round(s.score, 3),
            "p": f"{s.p_value:.3g}",
            "CAV accuracy": round(s.accuracy, 3),
            "significant": s.significant,
        }
        for s in scores
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    randoms = f"the index's other images ({pool})" if pool else "random images made here"
    st.caption(
        f"A score near 1: nearly all of the class's images ({images} used) "
        "gain from the concept; near 0: they lose. Significant: the scores over the random sets differ from a "
        "random direction's (Welch's t-test, p < 0.05) and the concept's CAVs separate it from random images "
        f"better than random sets separate from each other. Counter-examples: {randoms}."
    )
