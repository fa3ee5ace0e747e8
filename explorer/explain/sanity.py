"""The sanity check: does a map follow the model? (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

Cascading randomisation: a private copy's components are randomised one at a time from the head down, and
each method's map is compared with the original by rank correlation. A method that explains the model should
change as the model goes; one whose map stays is showing the image, not the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.explain.attribution import DEFAULTS, Attribution, Progress, Settings, check_request, explain
from explorer.nets import InceptionNetwork


@dataclass(frozen=True)
class SanityStep:
    randomised_from: str  # the component randomised last (all above it are random too)
    spearman: float  # computed on the full maps
    thumbnail: np.ndarray  # the map at this step, shrunk to THUMBNAIL pixels a side: enough to look at


#: The side of a sanity step's map as kept: a session holds up to 5 methods x 10 maps of 50 KB, not 360 KB.
THUMBNAIL = 112


def thumbnail(heatmap: np.ndarray) -> np.ndarray:
    """A map averaged down to THUMBNAIL x THUMBNAIL (float32): what the sanity check's picture shows."""
    small = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(heatmap))[None, None], THUMBNAIL)
    return small[0, 0].numpy().astype(np.float32)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (the sanity check's measure of resemblance)."""

    def ranks(values: np.ndarray) -> np.ndarray:
        # Tied values share their average rank: a CAM is mostly zeros, and ranking those by position would
        # make any two such maps look alike.
        flat = values.ravel()
        order = flat.argsort(kind="stable")
        _, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
        out = np.empty(flat.size, dtype=np.float64)
        out[order] = np.repeat(first + (counts - 1) / 2.0, counts)
        return out

    if np.ptp(a) == 0 or np.ptp(b) == 0:  # a flat map (a dead class signal) resembles nothing
        return 0.0
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra @ ra) * (rb @ rb)))
    return float(ra @ rb / denominator) if denominator else 0.0


def randomise_(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    """Re-initialise weights as a fresh network's (He-normal convolutions, small linear, identity batch norms)."""
    with torch.no_grad():
        for root in modules:
            for module in root.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    fan_in = module.weight[0].numel()
                    std = 0.01 if isinstance(module, nn.Linear) else (2.0 / fan_in) ** 0.5
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.BatchNorm2d):
                    module.reset_parameters()


def sanity_check(
    model: InceptionNetwork,
    x: Tensor,
    methods: Sequence[str],
    label: Callable[[int], str],
    block: str | None = None,
    class_index: int | None = None,
    settings: Settings = DEFAULTS,
    progress: Progress | None = None,
) -> tuple[dict[str, Attribution], dict[str, list[SanityStep]]]:
    """Cascading randomisation of ``model`` from the head down, a component at a time (Adebayo et al. 2018).

    ``model`` is changed: give it a copy of its own (:meth:`explorer.runtime.private.PrivateCopies.scratch`).
    Returns each method's original map, and for each method and step the rank correlation of its map with the
    original and the map itself (as a thumbnail). The class is fixed to the original top-1 (or ``class_index``)
    throughout.
    """
    for method in methods:
        check_request(model, method, block, class_index)
    if class_index is None:
        with torch.no_grad():
            class_index = int(model(x)[0].argmax())
    components = [c for c in reversed(model.components)]
    total = len(methods) * (len(components) + 1)
    done = 0

    def each(method: str) -> Attribution:
        nonlocal done
        result = explain(model, x, method, label, block, class_index, settings)
        done += 1
        if progress is not None:
            progress(done / total, f"{method}, {done} of {total} maps")
        return result

    original = {method: each(method) for method in methods}
    steps: dict[str, list[SanityStep]] = {method: [] for method in methods}
    generator = torch.Generator().manual_seed(0)
    for comp in components:
        randomise_([model.get_submodule(name) for name in comp.modules], generator)
        for method in methods:
            found = each(method)
            similarity = rank_correlation(original[method].heatmap, found.heatmap)
            steps[method].append(SanityStep(comp.title, similarity, thumbnail(found.heatmap)))
    return original, steps
