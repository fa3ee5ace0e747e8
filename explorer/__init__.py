"""Inception-ResNet-v2 Explorer: the network, its layer counts, its graph and its activations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer.model import (
        VARIANTS,
        InceptionNetwork,
        InceptionResNetConfig,
        InceptionResNetV2,
        InceptionV4,
        InceptionV4Config,
        NetworkConfig,
        build_model,
        make_config,
    )

__all__ = [
    "VARIANTS",
    "InceptionNetwork",
    "InceptionResNetConfig",
    "InceptionResNetV2",
    "InceptionV4",
    "InceptionV4Config",
    "NetworkConfig",
    "build_model",
    "make_config",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that `explorer.app` (the server's entry) does not import torch before the server is up.
    if name in __all__:
        from explorer import model

        return getattr(model, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
