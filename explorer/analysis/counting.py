"""Layer counts under every convention people use, component by component (model -> numbers).

Nothing here is typed in: the operations come from a ``torch.fx`` trace of the built network (on
the ``meta`` device, so no weights are made), the leaf modules from its module tree, and the
parameters, MACs and shapes from torchinfo (:mod:`explorer.analysis.summary`).

The network is a chain of components (stem, Mixed_5b, A blocks, Reduction-A, ...): every path
from input to output passes through each component's last operation. So a longest path splits
exactly into per-component parts, just as plain counts do, and components always add up to the
whole.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from explorer.analysis.summary import shape_text, summarize
from explorer.nets import InceptionNetwork, NetworkConfig, model_from_config
from explorer.nets.tables import VARIANTS

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
            component, target, scope = _component_key(model, node.target), node.target, node.target
        elif node.op == "call_function" and node.target in _FUNCTION_KINDS:
            kind, keras = _FUNCTION_KINDS[node.target]
            scope = list(node.meta.get("nn_module_stack", {}))[-1]
            component, target = _component_key(model, scope), getattr(node.target, "__name__", str(node.target))
        else:
            # A new kind of operation must be classified before anything is counted.
            raise ValueError(f"cannot classify traced operation {node.op} {node.target!r}")
        inputs = tuple(index[n.name] for n in node.all_input_nodes)
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape) if meta is not None else None
        ops.append(Operation(len(ops), node.name, kind, component, target, keras, inputs, scope, shape))
        index[node.name] = len(ops) - 1
    return ops


def _component_key(model: InceptionNetwork, path: str) -> str:
    comp = model.component_of(path)
    if comp is None:
        raise ValueError(f"{path!r} belongs to no component of {model.config.variant}")
    return comp.key


def _module_kind(module: nn.Module) -> tuple[str, str | None]:
    for cls, kind, keras in _MODULE_KINDS:
        if isinstance(module, cls):
            return kind, keras
    raise ValueError(f"cannot classify module {type(module).__name__}")


# --------------------------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------------------------

KERAS_WEIGHTED_LAYERS = frozenset({"Conv2D", "BatchNormalization", "Dense"})


def _within(scope: str, name: str) -> bool:
    return scope == name or scope.startswith(name + ".")


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
        return sum(int(self.selects(op)) for op in ops if _within(op.scope, scope))


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
            if _within(op.scope, scope):
                best[op.index] = int(self.selects(op)) + max((best.get(i, 0) for i in op.inputs), default=0)
        return max(best.values(), default=0)


class LeafModules:
    """Modules without submodules, from the module tree, by the component they sit in."""

    def __call__(self, model: InceptionNetwork, ops: list[Operation]) -> dict[str, int]:
        values = {comp.key: 0 for comp in model.components}
        for name, module in model.named_modules():
            if name and not any(module.children()):
                values[_component_key(model, name)] += 1
        return values

    def within(self, model: InceptionNetwork, ops: list[Operation], scope: str) -> int:
        return sum(1 for name, m in model.named_modules() if _within(name, scope) and not any(m.children()))


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


# --------------------------------------------------------------------------------------------
# Counting a network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentCounts:
    """One component's layers by kind, with its parameters, MACs and output shape."""

    key: str
    title: str
    modules: tuple[str, ...]
    kinds: dict[str, int]
    params: int
    macs: int
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class Convention:
    key: str
    name: str
    definition: str
    total: int
    per_component: dict[str, int]
    reproduces: str  # the published figure this total reproduces, or ""


@dataclass(frozen=True)
class LayerCounts:
    variant: str
    repeats: tuple[int, int, int]
    is_published_network: bool  # an unmodified variant table
    components: tuple[ComponentCounts, ...]
    whole: ComponentCounts
    conventions: tuple[Convention, ...]
    keras_params: int  # parameters as Keras counts them (see keras_parameter_count)

    def convention(self, key: str) -> Convention:
        return next(c for c in self.conventions if c.key == key)

    def to_json(self) -> dict:
        return {
            "variant": self.variant,
            "repeats": dict(zip("ABC", self.repeats, strict=True)),
            "conventions": [
                {
                    "name": c.name,
                    "key": c.key,
                    "definition": c.definition,
                    "total": c.total,
                    "reproduces": c.reproduces,
                    "per_component": c.per_component,
                }
                for c in self.conventions
            ],
            "components": [_component_json(c) for c in (*self.components, self.whole)],
            "params": self.whole.params,
            "keras_params": self.keras_params,
        }


def _component_json(comp: ComponentCounts) -> dict:
    return {
        "name": comp.title,
        "key": comp.key,
        "modules": list(comp.modules),
        **comp.kinds,
        "params": comp.params,
        "macs": comp.macs,
        "output_shape": list(comp.output_shape),
    }


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters as Keras counts them for the same network.

    Keras' batch norms here have no scale (gamma), since a ReLU follows, and Keras' count
    includes each batch norm's moving mean and variance: per batch-norm channel, one parameter
    fewer and two more than PyTorch's count.
    """
    params = sum(p.numel() for p in model.parameters())
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return params - bn_channels + 2 * bn_channels


def counts_within(model: InceptionNetwork, ops: list[Operation], scope: str) -> dict[str, int]:
    """Every convention for the operations of one module (a block, a unit, a layer), by convention key."""
    return {rule.key: rule.measure.within(model, ops, scope) for rule in RULES}


def count_layers(config: NetworkConfig) -> LayerCounts:
    """Every convention and every layer kind, per component and for the whole network."""
    from explorer.nets import VARIANTS

    model = model_from_config(config, seed=None, device="meta")
    ops = trace_operations(model)
    summary = {comp.key: comp for comp in summarize(config).components}

    components = []
    for comp in model.components:
        kinds = {kind: sum(op.kind == kind and op.component == comp.key for op in ops) for kind in KINDS}
        s = summary[comp.key]
        components.append(ComponentCounts(comp.key, comp.title, comp.modules, kinds, s.params, s.macs, s.output_shape))
    whole = ComponentCounts(
        "total",
        "Whole network",
        tuple(name for comp in components for name in comp.modules),
        {kind: sum(c.kinds[kind] for c in components) for kind in KINDS},
        sum(c.params for c in components),
        sum(c.macs for c in components),
        components[-1].output_shape,
    )

    published = config == VARIANTS.get(config.variant) and config.variant == "released"
    keras_params = keras_parameter_count(model)
    conventions = []
    for rule in RULES:
        per_component = rule.measure(model, ops)
        total = sum(per_component.values())
        figure = next((f for f in PUBLISHED_FIGURES if f.measure == rule.key and f.matches(total)), None)
        conventions.append(
            Convention(
                rule.key,
                rule.name,
                rule.definition,
                total,
                per_component,
                reproduces=f"{figure.says} ({figure.source})" if published and figure else "",
            )
        )
    return LayerCounts(
        config.variant,
        config.repeats.as_tuple(),
        config == VARIANTS.get(config.variant),
        tuple(components),
        whole,
        tuple(conventions),
        keras_params,
    )


# --------------------------------------------------------------------------------------------
# Published figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedFigure:
    """A number published for the released Inception-ResNet-v2, and what it is said to count."""

    value: int
    says: str
    source: str
    measure: str  # the convention key (or "params" / "keras_params") it would follow
    tolerance: int = 0  # for figures given as "about ..." or rounded

    def matches(self, value: int) -> bool:
        return abs(value - self.value) <= self.tolerance


PUBLISHED_FIGURES: tuple[PublishedFigure, ...] = (
    PublishedFigure(164, "164 layers deep", "MathWorks' pretrained-network table; many blogs", "longest_conv_fc_path"),
    PublishedFigure(449, "Depth 449", "Keras applications table", "weighted_layers"),
    PublishedFigure(780, "about 780 layers", "len(model.layers) in Keras", "keras_layers", tolerance=5),
    PublishedFigure(244, "244 convolutions", "Conv2D layers of the Keras / TF-slim network", "conv_layers"),
    PublishedFigure(55_800_000, "55.8M parameters", "timm", "params", tolerance=50_000),
    PublishedFigure(55_900_000, "55.9M parameters", "Keras applications table", "keras_params", tolerance=50_000),
)


@dataclass(frozen=True)
class Candidate:
    variant: str
    convention: str
    value: int


@dataclass(frozen=True)
class Reconciliation:
    figure: PublishedFigure
    reproduced_by: tuple[Candidate, ...]
    nearest: tuple[Candidate, ...]
    explanation: str
    candidates: tuple[Candidate, ...] = field(repr=False, default=())


def _candidates(counts: LayerCounts) -> list[Candidate]:
    found = [Candidate(counts.variant, c.name, c.total) for c in counts.conventions]
    found.append(Candidate(counts.variant, "Parameters (PyTorch, timm)", counts.whole.params))
    found.append(Candidate(counts.variant, "Parameters (as Keras counts them)", counts.keras_params))
    return found


def reconcile(all_counts: list[LayerCounts]) -> list[Reconciliation]:
    """For each published figure: which definition on which variant reproduces it, or the nearest."""
    released = next(c for c in all_counts if c.variant == "released" and c.is_published_network)
    rows = []
    for figure in PUBLISHED_FIGURES:
        candidates = [cand for counts in all_counts for cand in _candidates(counts)]
        on_released = _candidates(released)
        hits = tuple(c for c in on_released if figure.matches(c.value))
        if hits:
            names = ", ".join(c.convention for c in hits)
            text = f"Reproduced on the released network by: {names}."
            rows.append(Reconciliation(figure, hits, (), text, tuple(candidates)))
            continue
        scale = "Parameters" in _measure_name(figure)
        pool = [c for c in candidates if ("Parameters" in c.convention) == scale]
        nearest = tuple(sorted(pool, key=lambda c: abs(c.value - figure.value))[:3])
        rows.append(Reconciliation(figure, (), nearest, _explain_miss(figure, released, pool), tuple(candidates)))
    return rows


def _measure_name(figure: PublishedFigure) -> str:
    return {"params": "Parameters", "keras_params": "Parameters"}.get(figure.measure, "layers")


def _explain_miss(figure: PublishedFigure, released: LayerCounts, pool: list[Candidate]) -> str:
    exact_elsewhere = [c for c in pool if figure.matches(c.value)]
    if exact_elsewhere:
        where = ", ".join(f"{c.convention} on {c.variant}" for c in exact_elsewhere)
        opening = f"Not reproduced on the released network it describes; only {where} gives {figure.value}."
    else:
        variants = ", ".join(dict.fromkeys(c.variant for c in pool))
        opening = f"No definition here gives {figure.value} on any variant ({variants})."
    own = [c for c in released.conventions if c.key == figure.measure] or list(released.conventions)
    closest = min(own, key=lambda c: abs(c.total - figure.value))
    diff = closest.total - figure.value
    text = (
        f"{opening} The definition it is usually given with, {closest.name}, counts {closest.total} on the "
        f"released network, {abs(diff)} {'more' if diff > 0 else 'fewer'}."
    )
    per_block = _per_block(released, closest)
    if per_block and diff % per_block == 0:
        blocks = sum(released.repeats)
        text += (
            f" Each residual block adds {per_block} to that count, so {figure.value} would need "
            f"{blocks - diff // per_block} residual blocks instead of {blocks}, a network nobody released."
        )
    return text


def _per_block(counts: LayerCounts, convention: Convention) -> int | None:
    """What one residual block adds to a convention, when every block type adds the same."""
    per = {
        convention.per_component[key] / n
        for key, n in zip(("block_a", "block_b", "block_c"), counts.repeats, strict=True)
    }
    if len(per) == 1:
        value = per.pop()
        return int(value) if value.is_integer() and value > 0 else None
    return None


# --------------------------------------------------------------------------------------------
# Text and CSV
# --------------------------------------------------------------------------------------------


def counts_table_rows(counts: LayerCounts) -> list[dict[str, object]]:
    """One row per component and one for the whole: kinds, parameters, MACs, shape, conventions."""
    rows = []
    for comp in (*counts.components, counts.whole):
        row: dict[str, object] = {"component": comp.title, "modules": " ".join(comp.modules)}
        row.update({KINDS[k]: v for k, v in comp.kinds.items()})
        row["params"] = comp.params
        row["MACs"] = comp.macs
        row["output_shape"] = shape_text(comp.output_shape)
        for conv in counts.conventions:
            row[conv.name] = conv.total if comp.key == "total" else conv.per_component[comp.key]
        rows.append(row)
    return rows


def to_csv(counts: LayerCounts) -> str:
    import csv
    import io

    rows = counts_table_rows(counts)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def format_counts(counts: LayerCounts) -> str:
    """The answer table (conventions) and the per-component table, as plain text."""
    r = counts.repeats
    name = VARIANTS[counts.variant].network
    lines = [f"{name} ({counts.variant}, {r[0]} x A, {r[1]} x B, {r[2]} x C): how many layers?", ""]
    lines.append(f"{'convention':<42} {'total':>6}  reproduces")
    for conv in counts.conventions:
        lines.append(f"{conv.name:<42} {conv.total:>6}  {conv.reproduces or '-'}")
    lines.append("")
    lines += [f"  {conv.name}: {conv.definition}" for conv in counts.conventions]
    lines.append("")
    short = dict(zip(KINDS, ("conv", "bn", "act", "pool", "cat", "scale", "add", "fc", "other"), strict=True))
    header = f"{'component':<28}" + "".join(f"{short[k]:>6}" for k in KINDS) + f"{'params':>13}{'MACs':>16}  output"
    lines.append(header)
    for comp in (*counts.components, counts.whole):
        shape = shape_text(comp.output_shape)
        lines.append(
            f"{comp.title:<28}"
            + "".join(f"{comp.kinds[k]:>6}" for k in KINDS)
            + f"{comp.params:>13,}{comp.macs:>16,}  {shape}"
        )
    return "\n".join(lines)
