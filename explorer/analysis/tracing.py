"""The network's operations, from a ``torch.fx`` trace of the built network (on the ``meta`` device, so no weights
are made): each call of a module or function, its layer kind, the component and block it belongs to."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from explorer.nets import InceptionNetwork

#: Layer kinds, in the order tables show them.
KINDS: dict[str, str] = {
    "conv": "convolutions",
    "batch_norm": "batch norms",
    "activation": "activations",
    "pooling": "poolings",
    "concat": "concatenations",
    "scaling": "residual scalings",
    "residual_add": "residual additions",
    "fc": "fully connected",
    "other": "other (flatten, dropout)",
}

# (module class, kind, the Keras layer InceptionResNetV2 builds for it). Keras' head has no
# dropout, and its GlobalAveragePooling2D flattens, so those two have no Keras layer.
_MODULE_KINDS: tuple[tuple[type[nn.Module], str, str | None], ...] = (
    (nn.Conv2d, "conv", "Conv2D"),
    (nn.BatchNorm2d, "batch_norm", "BatchNormalization"),
    (nn.ReLU, "activation", "Activation"),
    (nn.MaxPool2d, "pooling", "MaxPooling2D"),
    (nn.AvgPool2d, "pooling", "AveragePooling2D"),
    (nn.AdaptiveAvgPool2d, "pooling", "GlobalAveragePooling2D"),
    (nn.Linear, "fc", "Dense"),
    (nn.Flatten, "other", None),
    (nn.Dropout, "other", None),
)
# Keras folds the residual's scale-and-add into one CustomScaleLayer: the add gets it.
_FUNCTION_KINDS: dict[Callable, tuple[str, str | None]] = {
    torch.cat: ("concat", "Concatenate"),
    operator.mul: ("scaling", None),
    operator.add: ("residual_add", "CustomScaleLayer"),
}


@dataclass(frozen=True)
class Operation:
    """One operation of the traced forward pass."""

    index: int
    name: str
    kind: str  # a key of KINDS, or "input"
    component: str
    target: str
    keras_layer: str | None
    inputs: tuple[int, ...]
    scope: str  # the module that performs it: the called module, or the one whose forward calls it
    shape: tuple[int, ...] | None = None  # output shape, when traced with shapes


class _ThreadConfinedTracer(fx.Tracer):
    """A torch.fx tracer that traces only its own thread's calls.

    While it traces, torch.fx replaces ``nn.Module.__call__`` and ``__getattr__`` for the whole process.
    Without this, a session's forward pass on the shared engine in another thread would be sent to the
    tracer and fail ("module is not installed as a submodule"). Calls from other threads pass straight
    through.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> object:
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: object, parameter_proxy_cache: dict) -> object:
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


#: One trace at a time in the process: two tracers' patches of ``nn.Module.__call__`` nest, and each passes the
#: other thread's calls to the real forward, so a second session's trace failed with "symbolically traced
#: variables cannot be used as inputs to control flow" (seen with several sessions moving block sliders at once).
_TRACING = threading.Lock()


def trace_operations(model: InceptionNetwork, with_shapes: bool = False) -> list[Operation]:
    """The forward pass as operations in execution order, each with its kind and component.

    ``with_shapes`` also runs the trace on a ``meta`` input of the config's size (no arithmetic,
    a few seconds) to record every operation's output shape.
    """
    with _TRACING:
        traced = _ThreadConfinedTracer().trace(model)
    graph = fx.GraphModule(model, traced, type(model).__name__)
    if with_shapes:
        size = model.config.input_size
        ShapeProp(graph).propagate(torch.empty(1, model.config.in_channels, size, size, device="meta"))
    index: dict[str, int] = {}
    ops: list[Operation] = []
    for node in graph.graph.nodes:
        if node.op == "output":
            continue
        if node.op == "placeholder":
            kind, keras, component, target, scope = "input", "InputLayer", model.components[0].key, node.name, ""
        elif node.op == "call_module":
            kind, keras = _module_kind(graph.get_submodule(node.target))
            component, target, scope = component_key(model, node.target), node.target, node.target
        elif node.op == "call_function" and node.target in _FUNCTION_KINDS:
            kind, keras = _FUNCTION_KINDS[node.target]
            scope = list(node.meta.get("nn_module_stack", {}))[-1]
            component, target = component_key(model, scope), getattr(node.target, "__name__", str(node.target))
        else:
            # A new kind of operation must be classified before anything is counted.
            raise ValueError(f"cannot classify traced operation {node.op} {node.target!r}")
        inputs = tuple(index[n.name] for n in node.all_input_nodes)
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape) if meta is not None else None
        ops.append(Operation(len(ops), node.name, kind, component, target, keras, inputs, scope, shape))
        index[node.name] = len(ops) - 1
    return ops


def component_key(model: InceptionNetwork, path: str) -> str:
    comp = model.component_of(path)
    if comp is None:
        raise ValueError(f"{path!r} belongs to no component of {model.config.variant}")
    return comp.key


def _module_kind(module: nn.Module) -> tuple[str, str | None]:
    for cls, kind, keras in _MODULE_KINDS:
        if isinstance(module, cls):
            return kind, keras
    raise ValueError(f"cannot classify module {type(module).__name__}")
