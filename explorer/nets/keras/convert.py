"""Keras' ``InceptionResNetV2`` (``.keras``, ``.weights.h5`` or legacy ``.h5``) converted into the released network.

``keras.applications.InceptionResNetV2`` is the network of the TF-slim checkpoint, as timm's is: the same
convolutions in the same order, so a Keras model maps onto ours layer by layer. Where a file names its layers
(:mod:`explorer.nets.keras.files`), the unnamed convolutions and batch norms (``conv2d_7``) count in the order Keras
made them, which is the order of this network's units, and the named ones (``block35_1_conv``, ``conv_7b``) say
where they go; a bare ``.weights.h5`` is read by Keras' layer order (:mod:`explorer.nets.keras.weights`). Kernels
are HWIO (ours OIHW); Keras' batch norms have no scale (gamma = 1) and epsilon 1e-3, as ours. The top: Keras' 1000
classes, none (``include_top=False``: a backbone), or Dense layers after global pooling (a fine-tuned head,
:mod:`explorer.nets.keras.head`). No TensorFlow or Keras is imported.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch

from explorer.nets.build import model_from_config
from explorer.nets.heads import LabelsError, class_names
from explorer.nets.keras.files import KerasLayer, batch_norm_state, oihw, read_keras, read_legacy_h5
from explorer.nets.keras.head import DenseLayer, dense_head
from explorer.nets.keras.weights import weights_h5_state_dict
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.units import ConvBnRelu
from explorer.nets.weights import WeightsError, WeightsInfo, check_state_dict, file_identity

_AUTO = re.compile(r"^(conv2d|batch_normalization)(?:_(\d+))?$")
_BLOCK = re.compile(r"^(block35|block17|block8)_(\d+)_conv$")
_RUNS = {"block35": "repeat", "block17": "repeat_1", "block8": "repeat_2"}


def is_keras_file(path: str | Path) -> bool:
    """Whether a file name is one of Keras' (``.keras``, ``.weights.h5``, ``.h5``)."""
    return Path(path).suffix in (".keras", ".h5")


def keras_state_dict(
    layers: list[KerasLayer], config: NetworkConfig, where: str
) -> tuple[dict[str, torch.Tensor], int, tuple[int, ...], list[str]]:
    """The state dict of the released network a file's named layers convert into, its number of classes (0 for a
    backbone without a head), hidden head widths and notes; :class:`WeightsError` listing what does not fit."""
    variables = {layer.name: layer.variables for layer in layers if layer.variables}
    by_kind: dict[str, list[tuple[int, str]]] = {"conv2d": [], "batch_normalization": []}
    for name in variables:
        found = _AUTO.match(name)
        if found:
            by_kind[found.group(1)].append((int(found.group(2) or 0), name))
    convs, norms = (sorted(by_kind[kind]) for kind in ("conv2d", "batch_normalization"))
    model = model_from_config(config, seed=None, device="meta")
    units = [n for n, m in model.named_modules() if isinstance(m, ConvBnRelu) and n != "conv2d_7b"]
    if len(convs) != len(units) or len(norms) != len(units):
        raise WeightsError(
            f"{where} is not keras.applications.InceptionResNetV2: {len(convs)} unnamed convolutions, "
            f"the network has {len(units)}"
        )
    state: dict[str, torch.Tensor] = {}
    pairs = [(unit, conv, norm) for unit, (_, conv), (_, norm) in zip(units, convs, norms, strict=True)]
    pairs.append(("conv2d_7b", "conv_7b", "conv_7b_bn"))
    for unit, conv, norm in pairs:
        if conv not in variables:
            raise WeightsError(f"{where} has no weights for its layer {conv}")
        state[f"{unit}.conv.weight"] = oihw(variables[conv][0])
        state.update(batch_norm_state(unit, variables.get(norm, ()), where))
    modules = dict(model.named_modules())
    for name, values in variables.items():
        found = _BLOCK.match(name)
        if not found:
            continue
        run = f"{_RUNS[found.group(1)]}.{int(found.group(2)) - 1}"
        target = run if run in modules else "block8"  # Keras' block8_10 is this network's last C block
        state[f"{target}.conv2d.weight"] = oihw(values[0])
        state[f"{target}.conv2d.bias"] = torch.from_numpy(values[1].astype(np.float32))
    dense = [
        DenseLayer(layer.name, layer.activation, layer.variables)
        for layer in layers
        if layer.kind == "Dense" or (layer.kind is None and len(layer.variables) == 2 and layer.variables[0].ndim == 2)
    ]
    head, hidden, classes, notes = dense_head(dense, model.num_features, where)
    state.update(head)
    return state, classes, hidden, notes


def load_keras_file(
    path: str | Path, config: NetworkConfig, labels: str | Path | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new released network carrying a Keras file's weights, with its head (:func:`keras_state_dict`)."""
    path = Path(path)
    if config.variant != "released" or not config.residual:
        raise WeightsError(f"{path.name}: Keras' InceptionResNetV2 is the released network, not {config.variant}")
    if path.name.endswith(".weights.h5"):
        state, classes, hidden, head_notes = weights_h5_state_dict(path, config)
    else:
        layers = read_keras(path) if path.suffix == ".keras" else read_legacy_h5(path)
        state, classes, hidden, head_notes = keras_state_dict(layers, config, path.name)
    notes = [f"converted from Keras ({path.name}): kernels HWIO to OIHW, batch norms without scale", *head_notes]
    if (classes, hidden) != (config.num_classes, config.head_hidden):
        config = dataclasses.replace(config, num_classes=classes, head_hidden=hidden)
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
        names, names_file, labels_note = class_names(path, classes, None, labels) if classes else (None, None, None)
    except LabelsError as error:
        raise WeightsError(str(error)) from None
    if labels_note:
        notes.append(labels_note)
    model.load_state_dict(state, strict=True, assign=True)
    identity = file_identity(path) + (f"|labels {file_identity(names_file)}" if names_file is not None else "")
    return model.float().eval(), WeightsInfo(f"Keras file {path.name}", False, tuple(notes), identity, names)
