"""Feature visualisations in the app: computed on request with a progress bar, kept once per server."""

from __future__ import annotations

import streamlit as st

from explorer.channels.gallery import ChannelImage, Gallery
from explorer.channels.visualise import Settings
from explorer.runtime import Engine
from explorer.text.usertext import shown


@st.cache_resource(show_spinner=False)
def server_gallery() -> Gallery:
    """Every session's visualisations, one computation per channel (keyed by all they depend on)."""
    return Gallery()


def settings_for(engine: Engine) -> Settings:
    """The standard settings on a GPU (512 steps, 224 px); fewer steps and a smaller image on a CPU."""
    return Settings.for_device(engine.device)


def kept_images(engine: Engine, block: str, channels: list[int]) -> dict[int, ChannelImage]:
    gallery, settings = server_gallery(), settings_for(engine)
    found = {c: gallery.known(engine.identity, block, "channel", settings, c) for c in channels}
    return {c: image for c, image in found.items() if image is not None}


def visualise_button(engine: Engine, block: str, channels: list[int], label: str, key: str) -> dict[int, ChannelImage]:
    """The channels' visualisations: those kept, and, on the button's press, the rest, with a progress bar."""
    kept = kept_images(engine, block, channels)
    missing = [c for c in channels if c not in kept]
    if missing:
        settings = settings_for(engine)
        # Measured (README, Feature visualisation): on an H200 about 25 s for up to 64 channels (launch-bound);
        # on a 2-core CPU 10 s for one channel, 39 s for eight.
        seconds = 25.0 if engine.device.type == "cuda" else 5 + 4.5 * len(missing)
        if st.button(
            f"{label} ({len(missing)} channel{'s' if len(missing) > 1 else ''}, about {seconds:.0f} s here)",
            key=key,
            icon=":material/auto_awesome:",
        ):
            bar = st.progress(0.0, text="Optimising...")
            try:
                server_gallery().images(
                    engine.source,
                    engine.identity,
                    block,
                    missing,
                    settings,
                    engine.device,
                    progress=lambda step, steps: bar.progress(step / steps, text=f"step {step} of {steps}"),
                )
            except (RuntimeError, ValueError) as error:  # out of memory, above all
                bar.empty()
                st.error(f"The visualisation failed: {shown(error, limit=300)}", icon=":material/error:")
                return kept
            st.rerun()  # drawn again without the button: every image asked for is kept now
    if kept and engine.weights.random:
        st.caption(
            "Random weights: these images show the optimiser and the receptive fields of the architecture, "
            "not learned features. Load trained weights (sidebar, Weights) to see what the channels learned."
        )
    return kept
