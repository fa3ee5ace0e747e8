"""The linear view of a block: expanded weights (Olah et al., "Zoom In", Distill 2020).

With its ReLUs taken out (the block's final one too), a channel's path through a block is affine in the block's
input: a sum over input channels of one spatial kernel each, convolved with that channel's map. The kernel of
input channel i is the gradient of the target channel's output at the centre of a blank input with respect to
channel i; its size is what the path sees (a residual block's 1x7 then 7x1 sees 7x7). On a residual block the
shortcut adds a single 1 at the centre of the target's own channel, kept apart here so that the branches'
kernels can be read on their own scale.

Blocks whose path holds a max pool (the reductions' pooling branch, the stem's) have no linear view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.circuits.paths import NotLinear, channel_path, previous_block, resolve
from explorer.nets import InceptionNetwork
from explorer.nets.blocks import InceptionResNetBlock


@dataclass(frozen=True)
class Expanded:
    """The kernels of one target channel: ``kernels[i]`` is input channel i's (height, width) kernel."""

    node: str
    channel: int
    inputs_of: str  # the block whose channels the kernels read (the previous block, or the pixels)
    kernels: np.ndarray  # (C_in, kh, kw), float32, the branches' part only
    identity: bool  # a residual block's shortcut adds input channel ``channel`` at the centre, weight 1

    def strongest(self, k: int) -> list[int]:
        """The input channels with the largest kernels (by the sum of absolute weights)."""
        size = np.abs(self.kernels).reshape(len(self.kernels), -1).sum(1)
        return [int(i) for i in np.argsort(-size, kind="stable")[:k]]

    def to_json(self, channels: list[int] | None = None) -> dict:
        chosen = self.strongest(8) if channels is None else channels
        return {
            "block": self.node,
            "channel": self.channel,
            "inputs_of": self.inputs_of,
            "identity": self.identity,
            "kernels": {str(i): self.kernels[i].round(6).tolist() for i in chosen},
        }


def expanded_weights(model: InceptionNetwork, node: str, channel: int, reach: int = 15) -> Expanded:
    """The expanded weights from the block's input to ``channel`` of ``node``; :class:`NotLinear` where there are
    none. ``reach``: the largest kernel looked for (the blank input is ``2 * reach + 1`` wide)."""
    target, module = resolve(model, node, channel)
    block = dict(model.blocks())[target.block]
    residual = target.branch is None and isinstance(block, InceptionResNetBlock)
    path = channel_path(module, target.channel, linear=True)
    parameter = next(model.parameters())
    width = _input_width(model, target.block)
    size = 2 * reach + 1
    blank = torch.zeros(1, width, size, size, device=parameter.device, dtype=parameter.dtype, requires_grad=True)
    with torch.enable_grad():
        out = path(blank)
        centre = out[0, out.shape[1] // 2, out.shape[2] // 2]
        (gradient,) = torch.autograd.grad(centre, blank)
    kernels = gradient[0].float()
    if residual and block.shortcut:  # the shortcut's 1, kept apart
        kernels[target.channel, reach, reach] -= 1.0
    support = kernels.abs().sum(0) > 0
    rows, cols = torch.nonzero(support, as_tuple=True)
    if len(rows):
        kernels = kernels[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    else:  # a path that does not depend on the input: one blank pixel
        kernels = kernels[:, reach : reach + 1, reach : reach + 1]
    return Expanded(
        target.node,
        target.channel,
        previous_block(model, target.block),
        kernels.cpu().numpy(),
        residual and block.shortcut,
    )


def _input_width(model: InceptionNetwork, block: str) -> int:
    from explorer.circuits.paths import node_shapes

    before = previous_block(model, block)
    return model.config.in_channels if before == "pixels" else node_shapes(model)[before][0]


__all__ = ["Expanded", "NotLinear", "expanded_weights"]
