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

from dataclasses import dataclass

from torch import nn

from explorer.analysis.conventions import RULES
from explorer.analysis.published import PUBLISHED_FIGURES
from explorer.analysis.summary import summarize
from explorer.analysis.tracing import KINDS, Operation, trace_operations
from explorer.nets import InceptionNetwork, NetworkConfig, model_from_config


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
