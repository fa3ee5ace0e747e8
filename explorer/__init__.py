"""Inception-ResNet-v2 Explorer: the network, its layer counts, its graph and its activations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer.model import VARIANTS, InceptionResNetConfig, InceptionResNetV2, build_model, make_config

__all__ = ["VARIANTS", "InceptionResNetConfig", "InceptionResNetV2", "build_model", "make_config"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `explorer.app` (the server's entry) does not import torch before the server is up.
    if name in __all__:
        from explorer import model

        return getattr(model, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
