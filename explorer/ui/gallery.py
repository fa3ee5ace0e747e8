"""Feature visualisations in the app: computed on request as jobs of the server's queue, kept once per server."""

from __future__ import annotations

import streamlit as st

from explorer.channels.features.gallery import ChannelImage, Gallery
from explorer.channels.features.visualise import Settings
from explorer.runtime import Engine
from explorer.runtime.jobs import Report
from explorer.ui.jobs import job_button
from explorer.ui.memory import server_memory


@st.cache_resource(show_spinner=False)
def server_gallery() -> Gallery:
    """Every session's visualisations, one computation per channel (keyed by all they depend on)."""
    return Gallery(memory=server_memory())


def settings_for(engine: Engine) -> Settings:
    """The standard settings on a GPU (512 steps, 224 px); fewer steps and a smaller image on a CPU."""
    return Settings.for_device(engine.device)


def kept_images(engine: Engine, block: str, channels: list[int]) -> dict[int, ChannelImage]:
    gallery, settings = server_gallery(), settings_for(engine)
    found = {c: gallery.known(engine.identity, block, "channel", settings, c) for c in channels}
    return {c: image for c, image in found.items() if image is not None}


def visualise_button(engine: Engine, block: str, channels: list[int], label: str, key: str) -> dict[int, ChannelImage]:
    """The channels' visualisations: those kept, and a button that makes the rest as a job of the server's queue
    (one job for every session asking for the same ones)."""
    kept = kept_images(engine, block, channels)
    missing = [c for c in channels if c not in kept]
    if missing:
        settings, gallery = settings_for(engine), server_gallery()
        # Measured (docs/guide/feature-visualisation.md): on an H200 about 25 s for up to 64 channels (launch-bound);
        # on a 2-core CPU 10 s for one channel, 39 s for eight.
        seconds = 25.0 if engine.device.type == "cuda" else 5 + 4.5 * len(missing)
        source, identity, device = engine.source, engine.identity, engine.device

        def work(report: Report) -> None:
            gallery.images(
                source,
                identity,
                block,
                missing,
                settings,
                device,
                progress=lambda step, steps: report(step / steps, f"step {step} of {steps}"),
            )

        many = f"{len(missing)} channel{'s' if len(missing) > 1 else ''}"
        done = job_button(
            ("visualise", identity, block, tuple(missing), settings),
            f"Visualising {many} of {block}",
            work,
            estimate_s=seconds,
            button=label,
            widget_key=key,
            failed="The visualisation failed",
            icon=":material/auto_awesome:",
        )
        if done is not None:
            st.rerun()  # drawn again without the button: every image asked for is kept now
    if kept and engine.weights.random:
        st.caption(
            "Random weights: these images show the optimiser and the receptive fields of the architecture, "
            "not learned features. Load trained weights (sidebar, Weights) to see what the channels learned."
        )
    return kept
