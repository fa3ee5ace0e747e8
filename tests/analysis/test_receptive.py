"""Receptive fields: the recursion's numbers, checked against where gradients reach in the input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.analysis.receptive import receptive_fields
from explorer.nets import build_model


def test_the_stem_by_hand():
    fields = receptive_fields(build_model("released", device="meta"))
    # conv 3x3/2, conv 3x3, conv 3x3 pad 1, max pool 3x3/2: sizes 3, 7, 11, 15; strides 2, 2, 2, 4.
    assert [(f.size, f.stride, f.start) for f in list(fields.values())[:4]] == [
        (3, 2, 1.0),
        (7, 2, 3.0),
        (11, 2, 3.0),
        (15, 4, 5.0),
    ]
    assert fields["conv2d_7b"].stride == 32


@pytest.mark.parametrize("block", ["maxpool_5a", "mixed_5b", "repeat.0"])
def test_gradients_reach_exactly_the_field(block):
    """Positive weights and average pools in place of max pools (the same geometry, a gradient everywhere in the
    window): the input pixels a unit's gradient reaches are its field, clipped to the image."""
    model = build_model("released", repeats=(1, 1, 1))
    fields = receptive_fields(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.uniform_(0.5, 1.0)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.MaxPool2d):
            parent, _, leaf = name.rpartition(".")
            pool = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, count_include_pad=False)
            setattr(model.get_submodule(parent) if parent else model, leaf, pool)
    x = torch.ones(1, 3, 299, 299, requires_grad=True)
    out = dict(model.forward_intermediates(x)[1])[block]
    row, column = out.shape[2] // 2, out.shape[3] // 3
    out[0, :, row, column].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0
    rows, columns = reached.any(1).nonzero(), reached.any(0).nonzero()
    left, top, right, bottom = fields[block].box(row, column, 299)
    assert (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1) == (
        left,
        top,
        right,
        bottom,
    )
