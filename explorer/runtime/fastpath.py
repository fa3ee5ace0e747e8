"""Inference-only rewrites that keep the numbers: batch norms folded, parallel 1x1 heads merged.

A folded copy computes the same block outputs as the original (to float rounding), so every
activation map still comes from the real block outputs; it just runs fewer, cheaper kernels. The
original model is left untouched (counting, the graph and training-mode uses need the batch norms).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from explorer.nets import ConvBnRelu, InceptionNetwork, InceptionResNetBlock, RepeatedBlocks


@torch.no_grad()
def fold_batch_norms(model: InceptionNetwork) -> InceptionNetwork:
    """A copy of ``model`` (eval mode) with each conv-BN-ReLU unit's batch norm folded into its conv."""
    folded = copy.deepcopy(model).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvBnRelu) and isinstance(unit.bn, nn.BatchNorm2d):
            # The copy's own conv takes the batch norm in place: no new module, no default
            # initialisation to run (and no draws from torch's global RNG).
            bn, conv = unit.bn, unit.conv
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            unit.bn = nn.Identity()
    return folded


class MergedHeadBlock(InceptionResNetBlock):
    """A residual block whose branches' first 1x1 convolutions run as one convolution.

    The branches all start from the block's input, and each begins with a 1x1 conv-ReLU (batch
    norm already folded): one conv with their output channels stacked computes the same numbers
    in one kernel, and its output is split back into the branches as views. Built from a block
    of a folded copy, whose modules it takes over.
    """

    def __init__(self, block: InceptionResNetBlock) -> None:
        nn.Module.__init__(self)
        heads, tails = [], []
        for branch in block.branches():
            units = list(branch) if isinstance(branch, nn.Sequential) else [branch]
            heads.append(units[0])
            tails.append(nn.Sequential(*units[1:]))
        self.split_sizes = [h.conv.out_channels for h in heads]
        # The first head's conv (of the folded copy) becomes the merged one: the heads' weights
        # and biases stacked, so no new module needs initialising.
        conv = heads[0].conv
        conv.weight = nn.Parameter(torch.cat([h.conv.weight for h in heads]).detach())
        conv.bias = nn.Parameter(torch.cat([h.conv.bias for h in heads]).detach())
        conv.out_channels = conv.weight.shape[0]
        self.heads = conv
        self.relu = nn.ReLU(inplace=True)
        self.tails = nn.ModuleList(tails)
        self.conv2d, self.act, self.scale = block.conv2d, block.act, block.scale
        self.activate, self.out_channels, self.shortcut = block.activate, block.out_channels, block.shortcut

    def residual(self, x: Tensor) -> Tensor:
        heads = self.relu(self.heads(x)).split(self.split_sizes, 1)
        return self.conv2d(torch.cat([tail(h) for tail, h in zip(self.tails, heads, strict=True)], 1))


def merge_branch_heads(model: InceptionNetwork) -> InceptionNetwork:
    """Replace every residual block of a folded model (in place) by a :class:`MergedHeadBlock`."""
    for module in model.modules():
        if isinstance(module, RepeatedBlocks):
            for index, block in enumerate(module):
                module[index] = MergedHeadBlock(block)
    if hasattr(model, "block8"):
        model.block8 = MergedHeadBlock(model.block8)
    return model


def inference_copy(model: InceptionNetwork) -> InceptionNetwork:
    """The copy the inference engine runs: batch norms folded, parallel branch heads merged."""
    return merge_branch_heads(fold_batch_norms(model))
