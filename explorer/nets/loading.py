"""Weights by name: what EXPLORER_WEIGHTS, the Weights box and the CLI say (``auto``, ``random``, ``hub:TAG``,
``file:NAME``), and the model they give."""

from __future__ import annotations

from pathlib import Path

from explorer.nets.hub import DEFAULT_TAG, HUB_REPOS, DownloadProgress, load_hub_weights, repo_of
from explorer.nets.keras.convert import is_keras_file, load_keras_file
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.weights import (
    RANDOM,
    SESSION_FILE,
    WEIGHT_SUFFIXES,
    WeightsError,
    WeightsInfo,
    file_identity,
    load_weights_file,
    random_weights,
    weights_dir,
)

AUTO = "auto"


def load_file(
    path: str | Path, config: NetworkConfig, labels: str | Path | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A weights file of any kind: a state dict (.safetensors, .pth, ...) or a Keras file (converted)."""
    if is_keras_file(path):
        return load_keras_file(path, config, labels)
    return load_weights_file(path, config, labels)


def parse_weights_key(value: str) -> str:
    """``auto``, ``random``, ``hub[:TAG]`` or ``file:NAME`` in canonical form, or :class:`WeightsError`."""
    text = value.strip()
    if text in (AUTO, RANDOM):
        return text
    kind, colon, name = text.partition(":")
    if kind == "hub":
        tag = name or DEFAULT_TAG
        repo_of(tag)  # refuses unknown tags
        return f"hub:{tag}"
    if kind == "file" and colon and name:
        session_file = SESSION_FILE.fullmatch(name) is not None  # a session's own checkpoint, by the app
        if (Path(name).name != name and not session_file) or Path(name).name in (".", ".."):
            raise WeightsError(f"file:{name}: give a file name inside {weights_dir()}/, not a path")
        if Path(name).suffix not in WEIGHT_SUFFIXES:
            raise WeightsError(f"file:{name}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
        return f"file:{name}"
    raise WeightsError(
        f"unknown weights {value!r}; expected auto, random, hub:TAG ({', '.join(HUB_REPOS)}) or file:NAME"
    )


def load_weights(
    key: str, config: NetworkConfig, progress: DownloadProgress | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new model with the weights a key names: ``random``, ``hub:TAG`` or ``file:NAME`` (in :func:`weights_dir`)."""
    kind, _, name = parse_weights_key(key).partition(":")
    if kind == "hub":
        return load_hub_weights(config, name, progress)
    if kind == "file":
        return load_file(weights_dir() / name, config)
    if kind == AUTO:
        raise WeightsError("auto is resolved by the server or the CLI, not loaded")
    return random_weights(config)


def weights_identity(key: str) -> str:
    """The identity of the weights a key names, as :class:`WeightsInfo` records it once they are loaded;
    cheap (no file is read), so that a cache can be looked up by it on every page run."""
    kind, _, name = parse_weights_key(key).partition(":")
    if kind == "file":
        return file_identity(weights_dir() / name)
    if kind == "hub":
        return f"hub:{name}"
    return f"{RANDOM}:0"
