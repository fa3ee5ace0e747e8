"""Inference-only rewrites that keep the numbers: batch norms folded, parallel 1x1 heads merged.

A folded copy computes the same block outputs as the original (to float rounding), so every
activation map still comes from the real block outputs; it just runs fewer, cheaper kernels. The
original model is left untouched (counting, the graph and training-mode uses need the batch norms).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from explorer.model import ConvBnRelu, InceptionResNetBlock, InceptionResNetV2, RepeatedBlocks


@torch.no_grad()
def fold_batch_norms(model: InceptionResNetV2) -> InceptionResNetV2:
    """A copy of ``model`` (eval mode) with each conv-BN-ReLU unit's batch norm folded into its conv."""
    folded = copy.deepcopy(model).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvBnRelu) and isinstance(unit.bn, nn.BatchNorm2d):
            bn, conv = unit.bn, unit.conv
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                bias=True,
                device=conv.weight.device,
                dtype=conv.weight.dtype,
            )
            fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            fused.bias.copy_(bn.bias - bn.running_mean * scale)
            unit.conv, unit.bn = fused, nn.Identity()
    return folded


class MergedHeadBlock(InceptionResNetBlock):
    """A residual block whose branches' first 1x1 convolutions run as one convolution.

    The branches all start from the block's input, and each begins with a 1x1 conv-ReLU (batch
    norm already folded): one conv with their output channels stacked computes the same numbers
    in one kernel, and its output is split back into the branches as views.
    """

    def __init__(self, block: InceptionResNetBlock) -> None:
        nn.Module.__init__(self)
        heads, tails = [], []
        for branch in block.branches():
            units = list(branch) if isinstance(branch, nn.Sequential) else [branch]
            heads.append(units[0])
            tails.append(nn.Sequential(*units[1:]))
        weight = heads[0].conv.weight
        conv = nn.Conv2d(
            weight.shape[1], sum(h.conv.out_channels for h in heads), 1, device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            conv.weight.copy_(torch.cat([h.conv.weight for h in heads]))
            conv.bias.copy_(torch.cat([h.conv.bias for h in heads]))
        self.heads = conv
        self.relu = nn.ReLU(inplace=True)
        self.tails = nn.ModuleList(tails)
        self.split_sizes = [h.conv.out_channels for h in heads]
        self.conv2d, self.act, self.scale = block.conv2d, block.act, block.scale
        self.activate, self.out_channels, self.shortcut = block.activate, block.out_channels, block.shortcut

    def residual(self, x: Tensor) -> Tensor:
        heads = self.relu(self.heads(x)).split(self.split_sizes, 1)
        return self.conv2d(torch.cat([tail(h) for tail, h in zip(self.tails, heads, strict=True)], 1))


def merge_branch_heads(model: InceptionResNetV2) -> InceptionResNetV2:
    """Replace every residual block of a folded model (in place) by a :class:`MergedHeadBlock`."""
    for module in model.modules():
        if isinstance(module, RepeatedBlocks):
            for index, block in enumerate(module):
                module[index] = MergedHeadBlock(block)
    if hasattr(model, "block8"):
        model.block8 = MergedHeadBlock(model.block8)
    return model


def inference_copy(model: InceptionResNetV2) -> InceptionResNetV2:
    """The copy the inference engine runs: batch norms folded, parallel branch heads merged."""
    return merge_branch_heads(fold_batch_norms(model))
