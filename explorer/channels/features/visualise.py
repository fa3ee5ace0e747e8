"""Feature visualisation: the image that excites a channel most, found by gradient ascent on the input.

Lucid's recipe (Olah et al., Distill 2017): a Fourier-parameterised, colour-decorrelated image
(:mod:`explorer.channels.features.fourier`), Lucid's robustness transforms each step
(:mod:`explorer.channels.features.robustness`), Adam. The objectives name what the explorer names: a channel of a
block (its mean over the grid), a neuron (the channel at the grid's centre), a channel of a unit inside a block
(``repeat_1.0.branch1.2``), a class logit, a direction in a block's activation space (the activation atlas's
objective: the centre neuron's dot product with the direction times their cosine). A batch of channels is
optimised together, one image each, so that a block's gallery is one run. The forward runs the model's blocks
explicitly and stops at the one it needs; nothing is hooked onto the (shared) model.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from explorer.channels.features.fourier import FourierImage
from explorer.channels.features.robustness import draw_transforms, robust
from explorer.nets import InceptionNetwork, is_within, model_from_config
from explorer.runtime.capture import GPU
from explorer.runtime.inside import inside_tensors
from explorer.runtime.preprocessing import preprocessing_for

OBJECTIVES = ("channel", "neuron", "class", "direction")


@dataclass(frozen=True)
class Settings:
    steps: int = 512
    size: int = 224
    seed: int = 0
    learning_rate: float = 0.05

    @classmethod
    def for_device(cls, device: torch.device | str) -> Settings:
        """The standard settings on a GPU; on a CPU fewer steps and a smaller image (about 30 s a channel)."""
        return cls() if torch.device(device).type == "cuda" else cls(steps=128, size=128)


@dataclass(frozen=True)
class Visualisation:
    """The optimised images, (B, size, size, 3) uint8, one per channel; the objective every 16 steps; each
    target's activation on its final image (untransformed); the seconds taken."""

    objective: str
    node: str
    channels: tuple[int, ...]
    settings: Settings
    images: np.ndarray
    trace: tuple[tuple[int, tuple[float, ...]], ...]
    final: tuple[float, ...]
    seconds: float

    def to_json(self) -> dict:
        return {
            "objective": self.objective,
            "node": self.node,
            "channels": list(self.channels),
            "steps": self.settings.steps,
            "size": self.settings.size,
            "seed": self.settings.seed,
            "trace": [{"step": step, "values": list(values)} for step, values in self.trace],
            "final": list(self.final),
            "seconds": round(self.seconds, 3),
        }


def start_seeds(seed: int, channels: Sequence[int]) -> list[int]:
    """Each channel's image starts from its own seed (the request's and the channel's), whatever batch it is in."""
    return [seed * 1_000_003 + channel for channel in channels]


def check_target(
    model: InceptionNetwork, objective: str, node: str, channels: Sequence[int], directions: Tensor | None = None
) -> int:
    """The number of channels (or classes) the target has; ValueError with a message for people otherwise.

    For "direction", ``channels`` only number the images (each its own start) and ``directions`` (len(channels),
    C) are the targets."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; the objectives are {', '.join(OBJECTIVES)}")
    if not channels:
        raise ValueError("give at least one channel")
    if (objective == "direction") != (directions is not None):
        raise ValueError("the direction objective takes directions, and only it does")
    if objective == "class":
        count, what = model.config.num_classes, "classes"
    else:
        blocks = model.block_names()
        if not any(is_within(node, b) for b in blocks):
            raise ValueError(f"unknown block {node!r}; blocks are: {', '.join(blocks)}")
        meta = model_from_config(model.config, device="meta")  # shapes only: no arithmetic, no weights
        size = model.config.input_size
        found = activation(meta, node, torch.empty(1, model.config.in_channels, size, size, device="meta"))
        if found is None:
            raise ValueError(f"{node!r} is not an output inside its block; open the block on the map for its parts")
        count, what = found.shape[1], "channels"
    if directions is not None:
        if tuple(directions.shape) != (len(channels), count):
            raise ValueError(f"{node} has {count} channels: give {len(channels)} directions of {count} numbers")
        return count
    for channel in channels:
        if not 0 <= channel < count:
            raise ValueError(f"{node or 'the network'} has {what} 0 to {count - 1}, not {channel}")
    return count


def activation(model: InceptionNetwork, node: str, x: Tensor) -> Tensor | None:
    """The output of a block, or of a unit or part inside one, for the input ``x``: the blocks run in order and
    the forward stops there (None for a name that is no output)."""
    for name, block in model.blocks():
        if name == node:
            return block(x)
        if is_within(node, name):
            return next((part.tensor for part in inside_tensors(block, x, name) if part.name == node), None)
        x = block(x)
    return None


def _target(model: InceptionNetwork, objective: str, node: str, channels: Tensor, x: Tensor) -> Tensor:
    """Each image's objective, (B,): its channel's mean over the grid, its value at the centre, its logit, or for
    a direction (``channels`` (B, C) then) the centre's dot product with it times their cosine (at least 0.1, as
    Lucid's direction_neuron_cossim: the cosine keeps the image to the direction, the dot product to strength)."""
    rows = torch.arange(x.shape[0], device=x.device)
    if objective == "class":
        return model(x)[rows, channels]
    out = activation(model, node, x)
    if objective == "direction":
        centre = out[:, :, out.shape[2] // 2, out.shape[3] // 2].float()
        dot = (centre * channels).sum(1)
        cosine = dot / (centre.norm(dim=1) * channels.norm(dim=1) + 1e-6)
        return dot * cosine.clamp(min=0.1)
    picked = out[rows, channels]  # (B, H, W)
    if objective == "neuron":
        return picked[:, picked.shape[1] // 2, picked.shape[2] // 2]
    return picked.mean((1, 2))


def visualise(
    model: InceptionNetwork,
    objective: str,
    node: str,
    channels: Sequence[int],
    settings: Settings | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    directions: Tensor | None = None,
) -> Visualisation:
    """One image per channel that excites it most (see the module's docstring); for the direction objective one
    per row of ``directions``, numbered by ``channels``. The model is only read."""
    device = torch.device(device)
    settings = settings or Settings.for_device(device)
    check_target(model, objective, node, channels, directions)
    started = time.perf_counter()
    preprocessing = preprocessing_for(model.config.variant)
    mean = torch.tensor(preprocessing.mean, device=device).reshape(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std, device=device).reshape(1, 3, 1, 1)
    image = FourierImage(start_seeds(settings.seed, channels), settings.size).to(device)
    # The transforms' draws come from a CPU generator, all at the start: repeatable, and on a GPU the one input
    # of the captured step that changes.
    thetas = draw_transforms(settings.steps, settings.size, torch.Generator().manual_seed(settings.seed)).to(device)
    wanted = torch.tensor(list(channels), device=device) if directions is None else directions.float().to(device)
    precision = (
        torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)  # no cast cache: it breaks graph replays
        if device.type == "cuda"
        else contextlib.nullcontext()
    )

    def target(x: Tensor) -> Tensor:
        with precision:  # the network only: the image and its transforms stay float32
            return _target(model, objective, node, wanted, x).float()

    ascent = _Ascent(image, settings.learning_rate, thetas, target)
    trace: list[tuple[int, tuple[float, ...]]] = []
    for step in range(settings.steps):
        values = ascent.step(step, (mean, std))
        if step % 16 == 0 or step == settings.steps - 1:
            trace.append((step, tuple(values.cpu().tolist())))
        if progress is not None:
            progress(step + 1, settings.steps)
    with torch.no_grad(), precision:
        final_images = image()
        final = _target(model, objective, node, wanted, (final_images - mean) / std).float()
    pixels = (final_images.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return Visualisation(
        objective,
        node,
        tuple(channels),
        settings,
        pixels,
        tuple(trace),
        tuple(final.cpu().tolist()),
        time.perf_counter() - started,
    )


class _Ascent:
    """The optimisation steps: eager on a CPU; on a GPU a few eager steps (cuDNN picks its kernels, Adam makes
    its state), then the whole step (image, transforms, forward to the target, backward, Adam) captured as one
    CUDA graph and replayed, since one step is hundreds of small kernels whose launches would take most of its
    time. Both run the same code on the same draws; GPU work goes through the process's gate (a capture of the
    engine's never overlaps it)."""

    WARM_UP = 3

    def __init__(self, image: FourierImage, rate: float, thetas: Tensor, target: Callable[[Tensor], Tensor]) -> None:
        self.image, self.thetas, self.target = image, thetas, target
        self.cuda = thetas.device.type == "cuda"
        self.optimiser = torch.optim.Adam(image.parameters(), lr=rate, capturable=self.cuda)
        self.theta = thetas[0].clone()  # the captured step's input: each step's draws are copied into it
        self.graph: torch.cuda.CUDAGraph | None = None
        self.cuda_graph = self.cuda  # False once a capture failed
        self.side = torch.cuda.Stream(thetas.device) if self.cuda else None  # warm-up off the default stream
        self.values: Tensor | None = None

    def _run(self, normalise: tuple[Tensor, Tensor]) -> Tensor:
        mean, std = normalise
        values = self.target((robust(self.image(), self.theta) - mean) / std)
        (-values.sum()).backward()
        self.optimiser.step()
        return values.detach()  # frees the step's autograd graph, which would tie the next step to this one's stream

    def step(self, step: int, normalise: tuple[Tensor, Tensor]) -> Tensor:
        """Step ``step``: the image moves once; the objective's values before the move, (B,)."""
        if not self.cuda:
            self.theta.copy_(self.thetas[step])
            self.optimiser.zero_grad(set_to_none=True)
            return self._run(normalise)
        if self.graph is None and self.cuda_graph and step == self.WARM_UP:
            self._capture(normalise)
        with GPU.work():
            self.theta.copy_(self.thetas[step])
            if self.graph is not None:
                self.graph.replay()
                return self.values
            self.optimiser.zero_grad(set_to_none=True)
            self.side.wait_stream(torch.cuda.current_stream(self.theta.device))
            with torch.cuda.stream(self.side):
                values = self._run(normalise)
            torch.cuda.current_stream(self.theta.device).wait_stream(self.side)
            return values

    def _capture(self, normalise: tuple[Tensor, Tensor]) -> None:
        torch.cuda.synchronize(self.theta.device)
        self.optimiser.zero_grad(set_to_none=True)  # the graph's backward makes the gradients, in its own pool
        graph = torch.cuda.CUDAGraph()
        try:
            with GPU.capture(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.values = self._run(normalise)
        except RuntimeError as error:  # an operation that cannot be captured: the steps stay eager, as slower
            warnings.warn(f"feature visualisation runs without a CUDA graph: {error}", stacklevel=3)
            self.cuda_graph = False
            return
        self.graph = graph
