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
from torch import nn

from explorer.nets.blocks import InceptionResNetBlock
from explorer.nets.build import model_from_config
from explorer.nets.heads import LabelsError, class_names
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.units import ConcatBranches, ConvBnRelu
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
    if path.name.endswith(".weights.h5"):
        state, classes = weights_h5_state_dict(path, config)
        notes = [f"converted from Keras ({path.name}): kernels HWIO to OIHW, batch norms without scale"]
    else:
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


# ------------------------------------------------------------------------------------------------ .weights.h5
# A bare weights file has no config: its layers are keyed in Keras' own layer order, which is reproduced here from
# this network's structure: Keras' functional graph (a Conv2D, BatchNormalization and Activation per unit, one
# layer for the scaled residual addition) ordered as keras.src.ops.function.map_graph orders it, by depth from
# the output, then by first visit in a depth-first walk from the output.


def keras_layer_order(model: InceptionNetwork) -> list[tuple[str, str]]:
    """(Keras class, our module path) of every layer with weights, in the order a Keras weights file counts them."""
    nodes: list[tuple[str, str, list[int]]] = [("InputLayer", "", [])]

    def add(kind: str, path: str, inputs: list[int]) -> int:
        nodes.append((kind, path, inputs))
        return len(nodes) - 1

    def chain(module: nn.Module, path: str, x: int) -> int:
        if isinstance(module, ConvBnRelu):
            conv = add("Conv2D", path, [x])
            return add("Activation", path, [add("BatchNormalization", path, [conv])])
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                x = chain(child, f"{path}.{name}", x)
            return x
        if isinstance(module, ConcatBranches):
            names = module.branch_names()
            outs = [chain(branch, f"{path}.{name}", x) for name, branch in zip(names, module.branches(), strict=True)]
            merged = add("Concatenate", path, outs)
            if not isinstance(module, InceptionResNetBlock):
                return merged
            up = add("Conv2D", f"{path}.conv2d", [merged])
            scaled = add("CustomScaleLayer", path, [x, up])
            return add("Activation", path, [scaled]) if module.activate else scaled
        return add(type(module).__name__, path, [x])  # a pooling

    x = 0
    for name, block in model.blocks():
        x = chain(block, name, x)
    index: dict[int, int] = {}
    finished: list[int] = []

    def visit(node: int) -> None:
        if node in finished:
            return
        index.setdefault(node, len(index))
        for parent in nodes[node][2]:
            visit(parent)
        finished.append(node)

    visit(x)
    depth = dict.fromkeys(finished, 0)
    for node in reversed(finished):
        for parent in nodes[node][2]:
            depth[parent] = max(depth[parent], depth[node] + 1)
    order = sorted(finished, key=lambda n: (-depth[n], index[n]))
    return [(nodes[n][0], nodes[n][1]) for n in order if nodes[n][0] in ("Conv2D", "BatchNormalization")]


def weights_h5_state_dict(path: Path, config: NetworkConfig) -> tuple[dict[str, torch.Tensor], int]:
    """A Keras 3 ``.weights.h5`` file of InceptionResNetV2 as our state dict, and its number of classes."""
    import h5py

    model = model_from_config(config, seed=None, device="meta")
    counts: dict[str, int] = {}
    state: dict[str, torch.Tensor] = {}
    try:
        stored = h5py.File(path, "r")
    except OSError as error:
        raise WeightsError(f"{path.name} is not an HDF5 file ({error})") from None
    with stored:
        layers = stored.get("layers")
        if layers is None:
            raise WeightsError(f"{path.name} is not a Keras 3 weights file (no 'layers' group; a legacy .h5?)")
        for kind, module in keras_layer_order(model):
            base = _snake(kind)
            n = counts.get(base, 0)
            counts[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            group = layers.get(f"{key}/vars")
            if group is None:
                raise WeightsError(f"{path.name} has no layer {key}: it is not keras.applications.InceptionResNetV2")
            values = [torch.from_numpy(np.asarray(group[str(i)], dtype=np.float32)) for i in range(len(group))]
            if kind == "Conv2D":
                target = module if module.endswith(".conv2d") else f"{module}.conv"
                state[f"{target}.weight"] = values[0].permute(3, 2, 0, 1).contiguous()
                if len(values) > 1:
                    state[f"{target}.bias"] = values[1]
            else:
                beta, mean, var = values
                state.update(
                    {
                        f"{module}.bn.weight": torch.ones_like(beta),
                        f"{module}.bn.bias": beta,
                        f"{module}.bn.running_mean": mean,
                        f"{module}.bn.running_var": var,
                        f"{module}.bn.num_batches_tracked": torch.tensor(0),
                    }
                )
        if "dense_1" in layers:
            raise WeightsError(f"{path.name} has a head of several Dense layers; one Dense after pooling converts")
        classes = 0
        if "dense" in layers:
            kernel, bias = (np.asarray(layers["dense/vars"][str(i)], dtype=np.float32) for i in range(2))
            state["classif.weight"] = torch.from_numpy(kernel).t().contiguous()
            state["classif.bias"] = torch.from_numpy(bias)
            classes = kernel.shape[1]
    return state, classes
