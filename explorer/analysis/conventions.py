"""The counting conventions as data: what each counts (a kind of operation, the longest path through some kinds,
the leaf modules, Keras's weighted layers) and the published figure it explains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from explorer.analysis.tracing import Operation, component_key
from explorer.nets import InceptionNetwork, is_within

KERAS_WEIGHTED_LAYERS = frozenset({"Conv2D", "BatchNormalization", "Dense"})


@dataclass(frozen=True)
class CountOf:
    """How many operations ``selects`` picks: per component, or inside one module."""

    selects: Callable[[Operation], bool]

    def __call__(self, model: InceptionNetwork, ops: list[Operation]) -> dict[str, int]:
        values = {comp.key: 0 for comp in model.components}
        for op in ops:
            values[op.component] += int(self.selects(op))
        return values

    def within(self, model: InceptionNetwork, ops: list[Operation], scope: str) -> int:
        return sum(int(self.selects(op)) for op in ops if is_within(op.scope, scope))


@dataclass(frozen=True)
class LongestPathOf:
    """The most picked operations on one path: input to output split at the component boundaries,
    or through one module, from its input to its output."""

    selects: Callable[[Operation], bool]

    def __call__(self, model: InceptionNetwork, ops: list[Operation]) -> dict[str, int]:
        best: list[int] = []
        for op in ops:  # execution order is a topological order
            best.append(int(self.selects(op)) + max((best[i] for i in op.inputs), default=0))
        last_of = {op.component: op.index for op in ops}
        values, before = {}, 0
        for comp in model.components:
            values[comp.key] = best[last_of[comp.key]] - before
            before = best[last_of[comp.key]]
        return values

    def within(self, model: InceptionNetwork, ops: list[Operation], scope: str) -> int:
        best: dict[int, int] = {}
        for op in ops:
            if is_within(op.scope, scope):
                best[op.index] = int(self.selects(op)) + max((best.get(i, 0) for i in op.inputs), default=0)
        return max(best.values(), default=0)


class LeafModules:
    """Modules without submodules, from the module tree, by the component they sit in."""

    def __call__(self, model: InceptionNetwork, ops: list[Operation]) -> dict[str, int]:
        values = {comp.key: 0 for comp in model.components}
        for name, module in model.named_modules():
            if name and not any(module.children()):
                values[component_key(model, name)] += 1
        return values

    def within(self, model: InceptionNetwork, ops: list[Operation], scope: str) -> int:
        return sum(1 for name, m in model.named_modules() if is_within(name, scope) and not any(m.children()))


#: A convention's values per component (in component order), and inside one module, from the model and its operations.
Measure = CountOf | LongestPathOf | LeafModules


@dataclass(frozen=True)
class ConventionRule:
    key: str
    name: str
    definition: str
    measure: Measure


RULES: tuple[ConventionRule, ...] = (
    ConventionRule(
        "longest_conv_fc_path",
        "Longest conv/FC path (MathWorks 'depth')",
        "The largest number of convolutional or fully connected layers on any one path from the input "
        "to the output, the definition MathWorks gives for a network's depth.",
        LongestPathOf(lambda op: op.kind in ("conv", "fc")),
    ),
    ConventionRule(
        "conv_layers",
        "Convolutions",
        "Every convolution, the linear 1x1 'filter expansions' included.",
        CountOf(lambda op: op.kind == "conv"),
    ),
    ConventionRule(
        "conv_fc_layers",
        "Convolutions + FC",
        "Every convolution and every fully connected layer.",
        CountOf(lambda op: op.kind in ("conv", "fc")),
    ),
    ConventionRule(
        "weighted_layers",
        "Layers with weights (Keras 'Depth')",
        "Every layer that holds weights (convolutions, batch norms, fully connected layers): the rule "
        "behind the 'Depth' column of Keras' applications table.",
        CountOf(lambda op: op.keras_layer in KERAS_WEIGHTED_LAYERS),
    ),
    ConventionRule(
        "keras_layers",
        "Keras layers (len(model.layers))",
        "The layers Keras' InceptionResNetV2 builds for these operations: the input, each convolution, "
        "batch norm, activation, pooling and concatenation, one CustomScaleLayer per residual "
        "scale-and-add, the global pooling and the dense layer (Keras has no flatten or dropout there).",
        CountOf(lambda op: op.keras_layer is not None),
    ),
    ConventionRule(
        "leaf_modules",
        "PyTorch leaf modules",
        "Modules with no submodules in this PyTorch model: each conv, batch norm, ReLU, pooling, "
        "flatten, dropout and linear module.",
        LeafModules(),
    ),
    ConventionRule(
        "operations",
        "Traced operations",
        "Every operation in the torch.fx trace of the forward pass: module calls, concatenations, "
        "multiplications and additions.",
        CountOf(lambda op: op.kind != "input"),
    ),
    ConventionRule(
        "longest_operation_path",
        "Longest path over all operations",
        "The largest number of traced operations on any one path from the input to the output.",
        LongestPathOf(lambda op: op.kind != "input"),
    ),
)
