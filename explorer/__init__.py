"""Inception-ResNet-v2 Explorer: the network, its layer counts, its graph and its activations."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, sources: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__all__``, ``__getattr__`` and ``__dir__`` (PEP 562) for names its modules define: ``sources``
    maps each module of ``package`` to the names it gives, each imported when first asked for."""
    where = {name: module for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__


# Lazy, so that `explorer.ui.app` (the server's entry) does not import torch before the server is up.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "nets": (
            "VARIANTS",
            "InceptionNetwork",
            "InceptionResNet",
            "InceptionResNetConfig",
            "InceptionResNetV2",
            "InceptionV4",
            "InceptionV4Config",
            "NetworkConfig",
            "build_model",
            "make_config",
        ),
    },
)
