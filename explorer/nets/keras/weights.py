"""A bare Keras 3 ``.weights.h5`` file of ``InceptionResNetV2`` as this network's state dict, read with h5py.

A weights file has no config: its layers are keyed in Keras' own layer order (``layers/conv2d_18/vars``), which is
reproduced here from this network's structure: Keras' functional graph (a Conv2D, BatchNormalization and
Activation per unit, one layer for the scaled residual addition) ordered as keras.src.ops.function.map_graph
orders it, by depth from the output, then by first visit in a depth-first walk from the output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.nets.blocks import InceptionResNetBlock
from explorer.nets.build import model_from_config
from explorer.nets.keras.files import batch_norm_state, oihw, snake
from explorer.nets.keras.head import DenseLayer, dense_head
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.units import ConcatBranches, ConvBnRelu
from explorer.nets.weights import WeightsError


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


def weights_h5_state_dict(
    path: Path, config: NetworkConfig
) -> tuple[dict[str, torch.Tensor], int, tuple[int, ...], list[str]]:
    """A Keras 3 ``.weights.h5`` file of InceptionResNetV2 as our state dict, its number of classes, hidden head
    widths and notes."""
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
            base = snake(kind)
            n = counts.get(base, 0)
            counts[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            group = layers.get(f"{key}/vars")
            if group is None:
                raise WeightsError(f"{path.name} has no layer {key}: it is not keras.applications.InceptionResNetV2")
            values = [np.asarray(group[str(i)]) for i in range(len(group))]
            if kind == "Conv2D":
                target = module if module.endswith(".conv2d") else f"{module}.conv"
                state[f"{target}.weight"] = oihw(values[0])
                if len(values) > 1:
                    state[f"{target}.bias"] = torch.from_numpy(values[1].astype(np.float32))
            else:
                state.update(batch_norm_state(module, values, path.name))
        dense, n = [], 0
        while (key := "dense" if n == 0 else f"dense_{n}") in layers:  # a chain head: Keras' order is its own
            group = layers[f"{key}/vars"]
            dense.append(DenseLayer(key, None, tuple(np.asarray(group[str(i)]) for i in range(len(group)))))
            n += 1
        head, hidden, classes, notes = dense_head(dense, model.num_features, path.name)
        state.update(head)
    return state, classes, hidden, notes
