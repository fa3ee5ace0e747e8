"""The layers of a Keras file and their variables, read with h5py (no TensorFlow, no Keras).

Two layouts name layers: a Keras 3 ``.keras`` zip (``config.json``, the layer graph, and ``model.weights.h5``, in
which each layer's variables sit under the snake case of its class and a counter in the config's layer order:
``layers/conv2d_18/vars``; a model used as one layer keeps its own layers under ``layers/functional/layers``), and
the legacy ``.h5`` of ``model.save('x.h5')`` or Keras 2's ``save_weights('x.h5')`` (a group per layer name with
its ``weight_names``, and the config in ``model_config`` when the whole model was saved). A bare Keras 3
``.weights.h5`` names no layers: :mod:`explorer.nets.keras.weights` reads it.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.nets.weights import WeightsError

#: Models used as one layer of another (``x = base_model(inputs)``, Keras' transfer-learning guide).
_MODELS = ("Functional", "Model", "Sequential")


@dataclass(frozen=True)
class KerasLayer:
    """One layer: its name, Keras class and activation (None where the file does not say), its variables."""

    name: str
    kind: str | None
    activation: str | None
    variables: tuple[np.ndarray, ...]


def snake(name: str) -> str:
    """Keras' own snake case of a class name (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras(path: Path) -> list[KerasLayer]:
    """The layers of a Keras 3 ``.keras`` file, in the config's order, nested models' layers in their place."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise WeightsError(f"{path.name} is not a Keras 3 .keras file ({error})") from None
    layers = config.get("config", {}).get("layers")
    if not isinstance(layers, list):
        raise WeightsError(f"{path.name}: its config.json has no layer list (a subclassed model?)")
    with h5py.File(io.BytesIO(weights), "r") as stored:
        return list(_stored_layers(layers, stored, "layers"))


def _stored_layers(layers: list[dict], stored, prefix: str) -> Iterator[KerasLayer]:
    counts: dict[str, int] = {}
    for layer in layers:
        kind, config = layer["class_name"], layer.get("config", {})
        base = snake(kind)
        n = counts.get(base, 0)
        counts[base] = n + 1
        key = base if n == 0 else f"{base}_{n}"
        if kind in _MODELS and isinstance(config.get("layers"), list):
            yield from _stored_layers(config["layers"], stored, f"{prefix}/{key}/layers")
            continue
        group = stored.get(f"{prefix}/{key}/vars")
        values = tuple(np.asarray(group[str(i)]) for i in range(len(group))) if group is not None else ()
        yield KerasLayer(config["name"], kind, config.get("activation"), values)


def read_legacy_h5(path: Path) -> list[KerasLayer]:
    """The layers of a legacy ``.h5`` (a whole model or Keras 2 weights), in the file's layer order."""
    import h5py

    try:
        stored = h5py.File(path, "r")
    except OSError as error:
        raise WeightsError(f"{path.name} is not an HDF5 file ({error})") from None
    with stored:
        group = stored.get("model_weights", stored)
        if "layer_names" not in group.attrs:
            raise WeightsError(f"{path.name} is not a Keras .h5 file (it names no layers)")
        kinds: dict[str, tuple[str, str | None]] = {}
        if "model_config" in stored.attrs:
            kinds = dict(_config_kinds(json.loads(_text(stored.attrs["model_config"])).get("config", {})))
        # A weight is named "layer/variable" ("conv2d/kernel:0" in Keras 2); a nested model's group holds its
        # layers' weights, so the prefix, not the group, names the layer.
        variables: dict[str, list[np.ndarray]] = {}
        for name in map(_text, group.attrs["layer_names"]):
            layer = group[name]
            for weight in map(_text, layer.attrs.get("weight_names", [])):
                owner = weight.rpartition("/")[0] or name
                variables.setdefault(owner, []).append(np.asarray(layer[weight]))
        found = []
        for name, values in variables.items():
            kind, activation = kinds.get(name, (None, None))
            found.append(KerasLayer(name, kind, activation, tuple(values)))
        return found


def _config_kinds(config: dict) -> Iterator[tuple[str, tuple[str, str | None]]]:
    for layer in config.get("layers", []):
        inner = layer.get("config", {})
        yield inner.get("name", ""), (layer["class_name"], inner.get("activation"))
        if layer["class_name"] in _MODELS:
            yield from _config_kinds(inner)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def oihw(kernel: np.ndarray) -> torch.Tensor:
    """A Keras convolution kernel (height, width, in, out) in PyTorch's order (out, in, height, width)."""
    return torch.from_numpy(kernel.astype(np.float32)).permute(3, 2, 0, 1).contiguous()


def batch_norm_state(unit: str, values: Sequence[np.ndarray], where: str) -> dict[str, torch.Tensor]:
    """A unit's batch norm from Keras' scale-less one (beta, moving mean, moving variance): gamma is 1."""
    if len(values) != 3:
        raise WeightsError(f"{where}: the batch norm of {unit} is not one without scale (beta, mean, variance)")
    beta, mean, var = (torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in values)
    return {
        f"{unit}.bn.weight": torch.ones_like(beta),
        f"{unit}.bn.bias": beta,
        f"{unit}.bn.running_mean": mean,
        f"{unit}.bn.running_var": var,
        f"{unit}.bn.num_batches_tracked": torch.tensor(0),
    }
