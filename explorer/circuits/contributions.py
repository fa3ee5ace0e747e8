"""Which channels of a block's input build one of its channels: gradient x activation, and the ablation check.

For a target channel C of block B (or of a branch inside B) and images, C's *response* on an image is its
map's value at its maximum (``"max"``, the dataset examples' measure) or its mean (``"mean"``). Input channel
i's score is gradient x activation of the response with respect to B's input, summed over positions and
averaged over the images: positive, i drives C; negative, it holds C back. On a residual block the score is
split into what reaches C through the identity shortcut (only C's own channel of the input) and what reaches
it through the branches.

Faithfulness travels with every circuit: the response's drop when the top K driving inputs are zeroed at B's
input, beside the drop when K random inputs are (the median of ``draws`` random sets), on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from explorer.circuits.paths import (
    PIXEL_CHANNELS,
    PIXELS,
    channel_path,
    previous_block,
    residual_path,
    resolve,
)
from explorer.nets import InceptionNetwork
from explorer.nets.blocks import InceptionResNetBlock

Response = Literal["max", "mean"]
RESPONSES: dict[str, str] = {
    "max": "the channel's value at its maximum over the grid",
    "mean": "the channel's mean over the grid",
}
#: Bytes of ablated inputs run at once (a batch of draws x images); the rest waits for the next batch.
ABLATION_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Contribution:
    block: str  # the input's block (PIXELS for the image)
    channel: int
    score: float  # gradient x activation, summed over positions, mean over the images
    identity: float | None = None  # on a residual block: the part through the shortcut
    branches: float | None = None  # ... and through the branches

    def to_json(self) -> dict:
        found: dict = {"block": self.block, "channel": self.channel, "score": self.score}
        if self.identity is not None:
            found |= {"identity": self.identity, "branches": self.branches}
        if self.block == PIXELS:
            found["colour"] = PIXEL_CHANNELS[self.channel]
        return found


@dataclass(frozen=True)
class Ablation:
    top: float  # the mean response's drop with the top K driving inputs zeroed
    random: float  # the median over draws of the drop with K random inputs zeroed
    k: int
    draws: int
    response: float  # the mean response before any ablation

    def to_json(self) -> dict:
        return {"top": self.top, "random": self.random, "k": self.k, "draws": self.draws, "response": self.response}


@dataclass(frozen=True)
class Circuit:
    node: str
    channel: int
    response: Response
    images: tuple[str, ...]
    inputs: tuple[Contribution, ...]  # every input channel, by |score| descending
    ablation: Ablation
    responses: tuple[float, ...] = field(default=())  # per image, before ablation
    residual: bool = False

    def top(self, k: int) -> tuple[Contribution, ...]:
        return self.inputs[:k]

    def shares(self) -> dict[str, float] | None:
        """On a residual block: the summed scores through the shortcut and through the branches."""
        if not self.residual:
            return None
        return {
            "identity": float(sum(c.identity or 0.0 for c in self.inputs)),
            "branches": float(sum(c.branches or 0.0 for c in self.inputs)),
        }

    def to_json(self, top: int | None = None) -> dict:
        found = {
            "block": self.node,
            "channel": self.channel,
            "response": self.response,
            "images": list(self.images),
            "inputs": [c.to_json() for c in (self.inputs if top is None else self.inputs[:top])],
            "ablation": self.ablation.to_json(),
        }
        shares = self.shares()
        if shares is not None:
            found["shares"] = shares
        return found


def block_input(model: InceptionNetwork, images: Tensor, block: str) -> Tensor:
    """``block``'s input for the images: the previous block's output (the images for the first block)."""
    x = images
    with torch.inference_mode():
        for name, module in model.blocks():
            if name == block:
                return x.clone()  # a normal tensor again: gradients are taken with respect to it
            x = module(x)
    raise KeyError(block)


def respond(maps: Tensor, response: Response) -> Tensor:
    """Per image, a channel's response from its (N, H, W) maps."""
    return maps.flatten(1).amax(1) if response == "max" else maps.flatten(1).mean(1)


def respond_all(maps: Tensor, change: Tensor, response: Response) -> Tensor:
    """Per image and channel, the first-order change of each channel's response when its (N, C, H, W) ``maps``
    change by ``change``: at each map's maximum for ``"max"``, over the grid for ``"mean"``. (N, C)."""
    if response == "mean":
        return change.flatten(2).mean(2)
    at = maps.flatten(2).argmax(2, keepdim=True)
    return change.flatten(2).gather(2, at)[..., 0]


def scores(path, x: Tensor, response: Response, split: bool) -> tuple[Tensor, list[Tensor]]:
    """Each input channel's gradient x activation of the response (summed over positions, mean over images);
    with ``split`` (a residual block's ``path(shortcut, branched)``) also each path's part. Returns the
    per-image responses and ``[total, *parts]``, each (C_in,)."""
    with torch.enable_grad():
        leaves = [x.detach().clone().requires_grad_(True) for _ in range(2 if split else 1)]
        maps = path(*leaves)
        responses = respond(maps.float(), response)
        grads = torch.autograd.grad(responses.sum(), leaves)
    parts = [(g.float() * x.float()).sum((2, 3)).mean(0) for g in grads]
    total = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    return responses.detach(), [total, *parts] if split else [total]


def circuit(
    model: InceptionNetwork,
    images: Tensor,
    node: str,
    channel: int,
    *,
    names: Sequence[str] = (),
    response: Response = "max",
    k: int = 5,
    draws: int = 20,
    seed: int = 0,
    inputs: Tensor | None = None,
) -> Circuit:
    """Channel ``channel`` of ``node`` (a block, or ``BLOCK.branchN``) over ``images`` (N, 3, H, W), normalised
    as the network expects and on the model's device; ``names`` names the images in the result. ``inputs``: the
    block's input for these images where the caller has it already (else computed here)."""
    if response not in RESPONSES:
        raise ValueError(f"response is one of {', '.join(RESPONSES)}, not {response!r}")
    target, module = resolve(model, node, channel)
    block_module = dict(model.blocks())[target.block]
    x = block_input(model, images, target.block) if inputs is None else inputs
    split = target.branch is None and isinstance(block_module, InceptionResNetBlock)
    path = residual_path(block_module, target.channel) if split else channel_path(module, target.channel)
    responses, (total, *parts) = scores(path, x, response, split)
    before = previous_block(model, target.block)
    order = torch.argsort(total.abs(), descending=True).tolist()
    values = total.tolist()
    parts = [p.tolist() for p in parts]
    found = tuple(Contribution(before, i, values[i], *((parts[0][i], parts[1][i]) if split else ())) for i in order)
    ablation = ablate(channel_path(module, target.channel), x, total, responses, response, k, draws, seed)
    return Circuit(
        target.node,
        target.channel,
        response,
        tuple(names) or tuple(f"image {i}" for i in range(len(x))),
        found,
        ablation,
        tuple(responses.float().tolist()),
        split,
    )


def ablate(
    path, x: Tensor, scores: Tensor, responses: Tensor, response: Response, k: int, draws: int, seed: int
) -> Ablation:
    """The mean response's drop with the top ``k`` driving inputs zeroed, and the median drop over ``draws``
    sets of ``k`` random inputs, all run as batches of (set x image)."""
    channels = x.shape[1]
    k = max(1, min(k, channels // 2))  # at most half the inputs: zeroing all of them says nothing (the pixels: 1)
    driving = [i for i in torch.argsort(scores, descending=True).tolist() if scores[i] > 0][:k]
    generator = np.random.default_rng(seed)
    sets = [driving] + [generator.choice(channels, size=k, replace=False).tolist() for _ in range(draws)]
    masks = torch.ones(len(sets), channels, device=x.device, dtype=x.dtype)
    for row, chosen in enumerate(sets):
        masks[row, chosen] = 0
    per_set = max(1, ABLATION_BYTES // max(1, x[0].numel() * x.element_size() * len(x)))
    found = []
    with torch.no_grad():
        for start in range(0, len(sets), per_set):
            chunk = masks[start : start + per_set]
            batch = (x[None] * chunk[:, None, :, None, None]).flatten(0, 1)
            found.append(respond(path(batch).float(), response).view(len(chunk), len(x)).mean(1))
    means = torch.cat(found)
    base = float(responses.float().mean())
    drops = base - means
    top = float(drops[0]) if driving else 0.0
    return Ablation(top, float(drops[1:].median()) if draws else 0.0, k, draws, base)
