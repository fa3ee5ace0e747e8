"""The weights a command names (``--weights``) and the engine that runs them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from explorer.nets import make_config

if TYPE_CHECKING:
    from explorer.nets import InceptionNetwork
    from explorer.nets.weights import WeightsInfo
    from explorer.runtime import Engine


def resolve_weights(value: str, variant: str = "released") -> str:
    """``--weights`` as a weights key or a file path: auto is the network's cached ImageNet weights, else random
    (never a download); plain ``hub`` its ImageNet weights on the Hub."""
    from explorer.nets.hub import cached_hub_weights, hub_tags_for
    from explorer.nets.loading import AUTO, parse_weights_key
    from explorer.nets.weights import RANDOM

    tags = hub_tags_for(variant)
    if value == AUTO:
        return f"hub:{tags[0]}" if tags and cached_hub_weights(tags[0]) is not None else RANDOM
    if value == "hub" and tags:
        return f"hub:{tags[0]}"
    if value in (RANDOM, "hub") or value.startswith("hub:"):
        return parse_weights_key(value)
    return value  # a file's path


def load_model(
    weights: str, variant: str = "released", labels: str | None = None, **overrides: object
) -> tuple[InceptionNetwork, WeightsInfo]:
    """The network with the weights the user named (:func:`resolve_weights`); ``labels``: a file's class names."""
    from explorer.nets.loading import load_file, load_weights

    config = make_config(variant, **overrides)
    key = resolve_weights(weights, variant)
    if key == "random" or key.startswith("hub:"):
        return load_weights(key, config, progress=stderr_progress)
    return load_file(key, config, labels)


def load_engine(
    weights: str, device: str, top_k: int = 8, variant: str = "released", labels: str | None = None
) -> Engine:
    """An inference engine with the weights the user named (:func:`resolve_weights`)."""
    from explorer.runtime import Engine

    model, info = load_model(weights, variant, labels)
    return Engine(model, info, device=device, top_k=top_k)


def stderr_progress(done: int, total: int) -> None:
    if total and sys.stderr.isatty():
        end = "\n" if done >= total else ""
        print(f"\rdownloading weights: {done / total:6.1%} of {total / 1e6:.0f} MB", end=end, file=sys.stderr)
