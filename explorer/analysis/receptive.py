"""Where a unit of a block's output looks in the input: each block's receptive field, from the traced network.

A unit at grid position (row, column) of a block's output sees the input pixels of a square of side ``size``
centred at ``start + stride * (row, column)`` (input pixel coordinates, the first pixel's centre at 0). Along
a path of convolutions and poolings, each of kernel k, stride s and padding p (the textbook recursion, as in
Araujo et al., Distill 2019, "Computing Receptive Fields of Convolutional Neural Networks"):
``size += (k - 1) * stride``, ``start += ((k - 1) / 2 - p) * stride``, ``stride *= s``. Where branches meet
(a concatenation, a residual addition) the field is the widest of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from explorer.analysis.tracing import trace_operations
from explorer.nets import InceptionNetwork, is_within


@dataclass(frozen=True)
class ReceptiveField:
    """The input square one output unit sees: its side, the step between neighbouring units, the first's centre."""

    size: int
    stride: int
    start: float

    def box(self, row: int, column: int, limit: int) -> tuple[int, int, int, int]:
        """The field of unit (row, column) as a pixel box (left, top, right, bottom), clipped to a ``limit``-pixel
        square input; right and bottom exclusive."""
        half = (self.size - 1) / 2
        centre_x, centre_y = self.start + self.stride * column, self.start + self.stride * row
        left, top = max(0, round(centre_x - half)), max(0, round(centre_y - half))
        right, bottom = min(limit, round(centre_x + half) + 1), min(limit, round(centre_y + half) + 1)
        return left, top, right, bottom


@dataclass(frozen=True)
class _Axis:
    """The field along one axis (the B and C blocks' 1x7 and 7x1 convolutions widen one axis at a time)."""

    size: int = 1
    stride: int = 1
    start: float = 0.0

    def through(self, kernel: int, stride: int, padding: int, dilation: int) -> _Axis:
        span = dilation * (kernel - 1)
        start = self.start + (span / 2 - padding) * self.stride
        return _Axis(self.size + span * self.stride, self.stride * stride, start)


def receptive_fields(model: InceptionNetwork) -> dict[str, ReceptiveField]:
    """Each block's output field, keyed by block name, in forward order."""
    ops = trace_operations(model)
    fields: list[tuple[_Axis, _Axis]] = []
    for op in ops:
        if op.kind == "input":
            fields.append((_Axis(), _Axis()))
            continue
        inputs = [fields[i] for i in op.inputs]
        rows = max((f[0] for f in inputs), key=lambda a: a.size, default=_Axis())
        columns = max((f[1] for f in inputs), key=lambda a: a.size, default=_Axis())
        module = model.get_submodule(op.target) if op.kind in ("conv", "pooling") else None
        if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            geometry = [_pair(getattr(module, name, 1)) for name in ("kernel_size", "stride", "padding", "dilation")]
            rows = rows.through(*(g[0] for g in geometry))
            columns = columns.through(*(g[1] for g in geometry))
        fields.append((rows, columns))
    last_op = {}  # a block's output is the last operation inside it
    for op in ops:
        for name in model.block_names():
            if op.scope and is_within(op.scope, name):
                last_op[name] = op.index
    result = {}
    for name in model.block_names():
        rows, columns = fields[last_op[name]]
        if rows.stride != columns.stride or rows.start != columns.start:
            raise ValueError(f"{name}: its field is not square ({rows} by {columns})")
        result[name] = ReceptiveField(max(rows.size, columns.size), rows.stride, rows.start)
    return result


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])
