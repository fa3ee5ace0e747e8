"""torchinfo summaries of a variant, grouped by component (stem, Mixed_5b, A blocks, ...).

The summary runs on a private copy of the network on the ``meta`` device: torchinfo attaches
hooks while it runs, and the shapes, parameter counts and MACs need no real numbers, so no shared
model is touched and no memory or time is spent on weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchinfo
from torchinfo.layer_info import LayerInfo

from explorer.nets import NetworkConfig, is_within, model_from_config
from explorer.nets.tables import VARIANTS


@dataclass(frozen=True)
class LayerRow:
    """One module in the summary: its state_dict path, class, output shape, parameters, MACs."""

    path: str
    depth: int
    class_name: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ComponentSummary:
    key: str
    title: str
    modules: tuple[str, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int
    rows: tuple[LayerRow, ...]


@dataclass(frozen=True)
class ModelSummary:
    variant: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int
    components: tuple[ComponentSummary, ...]


def _path(layer: LayerInfo) -> str:
    names = []
    node: LayerInfo | None = layer
    while node is not None and node.depth > 0:
        names.append(node.var_name)
        node = node.parent_info
    return ".".join(reversed(names))


def summarize(config: NetworkConfig, batch_size: int = 1) -> ModelSummary:
    """Shapes, parameters and MACs of every module, grouped by component, from torchinfo."""
    model = model_from_config(config, seed=None, device="meta").eval()
    input_shape = (batch_size, config.in_channels, config.input_size, config.input_size)
    stats = torchinfo.summary(
        model,
        input_size=input_shape,
        device="meta",
        depth=99,
        verbose=0,
        col_names=("output_size", "num_params", "mult_adds"),
    )
    # torchinfo gives a container MACs of its own reckoning; a container's MACs here are the sum
    # of its leaf modules' MACs, so components add up to the whole.
    leaves = [(_path(layer), int(layer.macs)) for layer in stats.summary_list if layer.is_leaf_layer]
    rows_by_component: dict[str, list[LayerRow]] = {}
    for layer in stats.summary_list:
        path = _path(layer)
        comp = model.component_of(path) if layer.depth else None
        if comp is None:  # the network, or a container of several components (Inception-v4's features)
            continue
        macs = sum(m for leaf, m in leaves if is_within(leaf, path))
        row = LayerRow(path, layer.depth, layer.class_name, tuple(layer.output_size), layer.num_params, macs)
        rows_by_component.setdefault(comp.key, []).append(row)

    components = []
    for comp in model.components:
        rows = rows_by_component.get(comp.key, [])
        tops = [row for row in rows if row.path in comp.modules]
        components.append(
            ComponentSummary(
                key=comp.key,
                title=comp.title,
                modules=comp.modules,
                output_shape=tops[-1].output_shape,
                params=sum(row.params for row in tops),
                macs=sum(row.macs for row in tops),
                rows=tuple(rows),
            )
        )
    return ModelSummary(
        variant=config.variant,
        input_shape=input_shape,
        output_shape=components[-1].output_shape,
        params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        macs=sum(comp.macs for comp in components),
        components=tuple(components),
    )


def shape_text(shape: tuple[int, ...]) -> str:
    """``(1, 320, 35, 35)`` as the paper writes it: ``35x35x320`` (height x width x channels)."""
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    return "x".join(str(s) for s in shape[1:])


def format_summary(summary: ModelSummary, depth: int = 1) -> str:
    """The summary as text, component by component, down to ``depth`` levels of modules."""
    lines = [
        f"{VARIANTS[summary.variant].network} ({summary.variant}): input {shape_text(summary.input_shape)}, "
        f"{summary.params:,} parameters, {summary.macs / 1e9:.2f} GMACs per image",
        "",
    ]
    header = f"  {'module':<40} {'type':<22} {'output':>12} {'params':>12} {'MACs':>16}"
    for comp in summary.components:
        lines.append(
            f"{comp.title}: output {shape_text(comp.output_shape)}, {comp.params:,} parameters, {comp.macs:,} MACs"
        )
        lines.append(header)
        for row in comp.rows:
            if row.depth > depth:
                continue
            name = "  " * (row.depth - 1) + row.path
            lines.append(
                f"  {name:<40} {row.class_name:<22} {shape_text(row.output_shape):>12} "
                f"{row.params:>12,} {row.macs:>16,}"
            )
        lines.append("")
    lines.append(
        f"Total: {summary.params:,} parameters ({summary.trainable_params:,} trainable), {summary.macs:,} MACs"
    )
    return "\n".join(lines)
