"""Keras' ``InceptionResNetV2`` (a ``.keras`` file) converted into the released network, read with h5py.

``keras.applications.InceptionResNetV2`` is the network of the TF-slim checkpoint, as timm's is: the same
convolutions in the same order, so a Keras model maps onto ours layer by layer. A ``.keras`` file is a zip of
``config.json`` (the layer graph) and ``model.weights.h5``, in which Keras 3 stores each layer under the snake
case of its class and a counter in the config's layer order (``conv2d_18``, ``dense``), whatever its name.
The config's own names of the unnamed convolutions and batch norms (``conv2d_7``) count in the order Keras
made them, which is the order of this network's units; the named ones (``block35_1_conv``, ``conv_7b``) say
where they go. Kernels are HWIO (ours OIHW); Keras' batch norms have no scale (gamma = 1) and epsilon 1e-3, as
ours. The top: Keras' 1000 classes, none (``include_top=False``: a backbone), or one ``Dense`` after global
pooling (a fine-tuned head). No TensorFlow or Keras is imported.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from explorer.nets.build import model_from_config
from explorer.nets.heads import LabelsError, class_names
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.units import ConvBnRelu
from explorer.nets.weights import WeightsError, WeightsInfo, check_state_dict, file_identity

_AUTO = re.compile(r"^(conv2d|batch_normalization)(?:_(\d+))?$")
_BLOCK = re.compile(r"^(block35|block17|block8)_(\d+)_conv$")
_RUNS = {"block35": "repeat", "block17": "repeat_1", "block8": "repeat_2"}


def _snake(name: str) -> str:
    """Keras' own snake case of a class name (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _read(path: Path) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
    """The config's layers, and each layer's variables by its config name."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise WeightsError(f"{path.name} is not a Keras 3 .keras file ({error})") from None
    layers = config.get("config", {}).get("layers")
    if not isinstance(layers, list):
        raise WeightsError(f"{path.name}: its config.json has no layer list (a Sequential or subclassed model?)")
    counts: dict[str, int] = {}
    variables: dict[str, list[np.ndarray]] = {}
    with h5py.File(io.BytesIO(weights), "r") as stored:
        for layer in layers:
            base = _snake(layer["class_name"])
            n = counts.get(base, 0)
            counts[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            group = stored.get(f"layers/{key}/vars")
            if group is not None:
                variables[layer["config"]["name"]] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return layers, variables


def keras_state_dict(path: str | Path, config: NetworkConfig) -> tuple[dict[str, torch.Tensor], int, list[str]]:
    """The state dict of the released network a ``.keras`` file converts into, its number of classes (0 for a
    backbone without a head) and notes; :class:`WeightsError` listing what does not fit."""
    path = Path(path)
    layers, variables = _read(path)
    names = [layer["config"]["name"] for layer in layers]
    by_kind: dict[str, list[tuple[int, str]]] = {"conv2d": [], "batch_normalization": []}
    for name in names:
        found = _AUTO.match(name)
        if found:
            by_kind[found.group(1)].append((int(found.group(2) or 0), name))
    convs, norms = (sorted(by_kind[kind]) for kind in ("conv2d", "batch_normalization"))
    model = model_from_config(config, seed=None, device="meta")
    units = [n for n, m in model.named_modules() if isinstance(m, ConvBnRelu) and n != "conv2d_7b"]
    if len(convs) != len(units) or len(norms) != len(units):
        raise WeightsError(
            f"{path.name} is not keras.applications.InceptionResNetV2: {len(convs)} unnamed convolutions, "
            f"the network has {len(units)}"
        )
    state: dict[str, torch.Tensor] = {}
    pairs = [(unit, conv, norm) for unit, (_, conv), (_, norm) in zip(units, convs, norms, strict=True)]
    pairs.append(("conv2d_7b", "conv_7b", "conv_7b_bn"))
    for unit, conv, norm in pairs:
        state[f"{unit}.conv.weight"] = _kernel(variables, conv)
        if len(variables.get(norm, [])) != 3:
            raise WeightsError(f"{path.name}: {norm} is not a batch norm without scale (beta, mean, variance)")
        beta, mean, var = (torch.from_numpy(v.astype(np.float32)) for v in variables[norm])
        state[f"{unit}.bn.weight"] = torch.ones_like(beta)  # Keras' scale=False: gamma is 1
        state[f"{unit}.bn.bias"], state[f"{unit}.bn.running_mean"], state[f"{unit}.bn.running_var"] = beta, mean, var
        state[f"{unit}.bn.num_batches_tracked"] = torch.tensor(0)
    modules = dict(model.named_modules())
    for name in names:
        found = _BLOCK.match(name)
        if not found:
            continue
        run = f"{_RUNS[found.group(1)]}.{int(found.group(2)) - 1}"
        target = run if run in modules else "block8"  # Keras' block8_10 is this network's last C block
        kernel, bias = variables[name]
        state[f"{target}.conv2d.weight"] = torch.from_numpy(kernel.astype(np.float32)).permute(3, 2, 0, 1).contiguous()
        state[f"{target}.conv2d.bias"] = torch.from_numpy(bias.astype(np.float32))
    dense = [layer["config"]["name"] for layer in layers if layer["class_name"] == "Dense"]
    notes = [f"converted from Keras ({path.name}): kernels HWIO to OIHW, batch norms without scale"]
    if len(dense) > 1:
        raise WeightsError(
            f"{path.name} has a head of {len(dense)} Dense layers; one Dense after global pooling converts"
        )
    classes = 0
    if dense:
        kernel, bias = variables[dense[0]]
        classes = kernel.shape[1]
        state["classif.weight"] = torch.from_numpy(kernel.astype(np.float32)).t().contiguous()
        state["classif.bias"] = torch.from_numpy(bias.astype(np.float32))
    return state, classes, notes


def _kernel(variables: dict[str, list[np.ndarray]], name: str) -> torch.Tensor:
    if name not in variables:
        raise WeightsError(f"the Keras file has no weights for its layer {name}")
    return torch.from_numpy(variables[name][0].astype(np.float32)).permute(3, 2, 0, 1).contiguous()


def load_keras_file(
    path: str | Path, config: NetworkConfig, labels: str | Path | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new released network carrying a ``.keras`` file's weights (:func:`keras_state_dict`)."""
    path = Path(path)
    if config.variant != "released" or not config.residual:
        raise WeightsError(f"{path.name}: Keras' InceptionResNetV2 is the released network, not {config.variant}")
    state, classes, notes = keras_state_dict(path, config)
    if classes != config.num_classes:
        config = dataclasses.replace(config, num_classes=classes)
        notes.append(
            "a backbone without a head (include_top=False)" if classes == 0 else f"a head of {classes} classes"
        )
    if classes == 0:
        state["classif.weight"] = torch.zeros(0, 1536)
        state["classif.bias"] = torch.zeros(0)
    model = model_from_config(config, seed=None, device="meta")
    problems = check_state_dict(model, state)
    if problems:
        raise WeightsError(f"{path.name} does not fit the released network", problems)
    try:
        names, names_file = class_names(path, classes, None, labels) if classes else (None, None)
    except LabelsError as error:
        raise WeightsError(str(error)) from None
    model.load_state_dict(state, strict=True, assign=True)
    identity = file_identity(path) + (f"|labels {file_identity(names_file)}" if names_file is not None else "")
    return model.float().eval(), WeightsInfo(f"Keras file {path.name}", False, tuple(notes), identity, names)
