"""Where a channel's signal goes: the channels of the next block and the classes it feeds most.

The same measure as a circuit's inputs, read forward: for every channel D of the next block (and every class),
the first-order part of D's response that channel C brings, gradient x activation with respect to C, summed
over positions and averaged over the images. One forward-mode pass (a dual tensor whose tangent is C's map
and zeros elsewhere) gives it for all of D at once, where reverse mode would take one backward per D.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from explorer.circuits.contributions import Response, block_input, respond_all
from explorer.circuits.paths import resolve
from explorer.nets import InceptionNetwork

# Forward mode's first use loads torch's own decompositions, which script functions with torch.jit (deprecated):
# a warning about torch, not about anything a user did.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


@dataclass(frozen=True)
class Onward:
    node: str
    channel: int
    next_block: str | None  # None after the last block
    channels: tuple[tuple[int, float], ...]  # (channel of the next block, score), by |score| descending
    classes: tuple[tuple[int, float], ...]  # (class, score on its logit), by score descending

    def to_json(self, top: int = 10, labels: list[str] | None = None) -> dict:
        def named(index: int) -> dict:
            return {"class": index} | ({"label": labels[index]} if labels and index < len(labels) else {})

        return {
            "block": self.node,
            "channel": self.channel,
            "next_block": self.next_block,
            "channels": [{"channel": c, "score": s} for c, s in self.channels[:top]],
            "classes": [named(c) | {"score": s} for c, s in self.classes[:top]],
        }


def onward(model: InceptionNetwork, images: Tensor, node: str, channel: int, response: Response = "max") -> Onward:
    """Channel ``channel`` of block ``node`` (a block's output) over ``images``: what it feeds next."""
    target, _ = resolve(model, node, channel)
    if target.branch is not None:
        raise ValueError(f"where a channel goes is read from a block's output, not a branch's ({node})")
    names = model.block_names()
    at = names.index(target.block)
    blocks = dict(model.blocks())
    with torch.no_grad():
        out = blocks[target.block](block_input(model, images, target.block))
    tangent = torch.zeros_like(out)
    tangent[:, target.channel] = out[:, target.channel]
    following = names[at + 1] if at + 1 < len(names) else None
    with torch.no_grad(), fwad.dual_level():
        x = fwad.make_dual(out, tangent)
        nxt = None
        for name in names[at + 1 :]:
            x = blocks[name](x)
            if name == following:
                nxt = fwad.unpack_dual(x)
        logits = fwad.unpack_dual(model.forward_head(x))
    channels: list[tuple[int, float]] = []
    if nxt is not None:
        scores = respond_all(nxt.primal.float(), nxt.tangent.float(), response).mean(0)
        channels = [(int(i), float(scores[i])) for i in torch.argsort(scores.abs(), descending=True)]
    class_scores = logits.tangent.float().mean(0)
    classes = [(int(i), float(class_scores[i])) for i in torch.argsort(class_scores, descending=True)]
    return Onward(target.node, target.channel, following, tuple(channels), tuple(classes))
