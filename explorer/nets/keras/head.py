"""A Keras head of Dense layers after global pooling, as this network's ``head_hidden`` and ``classif``.

Keras fine-tunes Inception-ResNet-v2 with a head on the pooled 1536 features: one ``Dense`` of the new classes,
or a hidden ``Dense(1024, activation='relu')`` first (the study card's). Hidden layers convert with ReLU, the last
one's softmax (or no activation) is the explorer's own softmax of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.nets.weights import WeightsError

HIDDEN = ("relu",)
LAST = ("softmax", "linear")


@dataclass(frozen=True)
class DenseLayer:
    name: str
    activation: str | None  # None where the file does not say (a bare weights file)
    variables: tuple[np.ndarray, ...]


def dense_head(
    layers: list[DenseLayer], features: int, where: str
) -> tuple[dict[str, torch.Tensor], tuple[int, ...], int, list[str]]:
    """The state entries, hidden widths, number of classes (0: no head) and notes of a chain of Dense layers."""
    state: dict[str, torch.Tensor] = {}
    width = features
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        kernel = layer.variables[0].astype(np.float32) if layer.variables else np.zeros((0, 0), np.float32)
        if kernel.ndim != 2 or kernel.shape[0] != width:
            raise WeightsError(
                f"{where}: its Dense layer {layer.name} takes {kernel.shape[0] if kernel.ndim == 2 else '?'} inputs "
                f"where {width} come; the head converts from global pooling ({features} features) on"
            )
        allowed = LAST if last else HIDDEN
        if layer.activation is not None and layer.activation not in allowed:
            raise WeightsError(
                f"{where}: its Dense layer {layer.name} has activation {layer.activation}; "
                f"{'the last' if last else 'a hidden'} Dense layer converts with {' or '.join(allowed)}"
            )
        biases = layer.variables[1:] or (np.zeros(kernel.shape[1]),)  # use_bias=False: none stored
        bias = biases[0].astype(np.float32)
        key = "classif" if last else f"head_hidden.{2 * i}"  # head_hidden is Linear, ReLU, Linear, ReLU...
        state[f"{key}.weight"] = torch.from_numpy(kernel).t().contiguous()
        state[f"{key}.bias"] = torch.from_numpy(bias)
        width = kernel.shape[1]
    hidden = tuple(layer.variables[0].shape[1] for layer in layers[:-1])
    notes = []
    if hidden:
        notes.append(f"a head of {len(layers)} Dense layers ({' -> '.join(map(str, (features, *hidden, width)))})")
        if any(layer.activation is None for layer in layers[:-1]):
            notes.append("its hidden Dense layers read as ReLU (a weights file does not say)")
    return state, hidden, (width if layers else 0), notes
