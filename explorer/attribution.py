"""Why did it say that? Attribution maps through Captum, and the sanity check that tells which follow the model.

Methods (Captum's implementations): Grad-CAM and Guided Grad-CAM at a block (Selvaraju et al. 2017),
Integrated Gradients (Sundararajan et al. 2017, optionally smoothed with SmoothGrad, Smilkov et al.
2017), occlusion (Zeiler and Fergus 2014) and saliency (Simonyan et al. 2014). Each gives a map over
the input image for one class.

Captum sets hooks on the modules it looks at (a layer's forward hook for the CAMs, backward hooks on
every ReLU for guided backpropagation), so it never runs on the shared model: :func:`private_copy`
makes the model's own copy for attribution, with ReLUs that do not work in place (guided
backpropagation replaces their gradients), and the engine lets one call at a time use it, under a lock
of its own. The sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018)
randomises a further private copy component by component from the head down and measures how much
each method's map still resembles the original: a method that explains the model should change.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.model import InceptionNetwork

Progress = Callable[[float, str], None]

# Captum says so each time guided backpropagation hooks the ReLUs; here it is expected (the hooks are on a
# private copy and are removed afterwards), and a server's log would fill with it.
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations", category=UserWarning)

#: Method name -> what it is, in a line for people.
METHODS: dict[str, str] = {
    "grad-cam": "Grad-CAM: the block's channels weighted by their average gradient, positive part",
    "guided-grad-cam": "Guided Grad-CAM: Grad-CAM times guided backpropagation's pixel gradients",
    "integrated-gradients": "Integrated Gradients: gradients summed along a path from a black image",
    "occlusion": "Occlusion: how much the class score drops when a patch is greyed out",
    "saliency": "Saliency: the largest absolute gradient of the class score at each pixel",
}
CAM_METHODS = ("grad-cam", "guided-grad-cam")


@dataclass(frozen=True)
class Settings:
    """The expensive methods' knobs; the defaults keep one image to seconds on a 2-core CPU."""

    steps: int = 24  # Integrated Gradients' path steps
    smooth: bool = False  # SmoothGrad over Integrated Gradients
    smooth_samples: int = 6
    window: int = 64  # occlusion patch, pixels
    stride: int = 32


#: The defaults, one shared (immutable) value.
DEFAULTS = Settings()


@dataclass(frozen=True)
class Attribution:
    method: str
    class_index: int
    label: str
    block: str | None  # for the CAM methods
    seconds: float
    heatmap: np.ndarray  # (H, W) float32 at input resolution, the method's own values

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "class_index": self.class_index,
            "label": self.label,
            "block": self.block,
            "seconds": round(self.seconds, 3),
        }


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


def private_copy(model: InceptionNetwork) -> InceptionNetwork:
    """A copy for attribution only: hooks set on it are seen by nobody else; ReLUs not in place."""
    twin = copy.deepcopy(model).eval().requires_grad_(False)
    for module in twin.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return twin


def check_request(model: InceptionNetwork, method: str, block: str | None, class_index: int | None) -> str:
    """The block a CAM method uses (the last block by default); :class:`ValueError` for bad requests."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods are: {', '.join(METHODS)}")
    if class_index is not None and not 0 <= class_index < model.config.num_classes:
        raise ValueError(f"class {class_index} is outside 0..{model.config.num_classes - 1}")
    names = model.block_names()
    block = block or names[-1]
    if block not in names:
        raise ValueError(f"unknown block {block!r}; blocks are: {', '.join(names)}")
    return block


def explain(
    model: InceptionNetwork,
    x: Tensor,
    method: str,
    label: Callable[[int], str],
    block: str | None = None,
    class_index: int | None = None,
    settings: Settings = DEFAULTS,
    progress: Progress | None = None,
) -> Attribution:
    """One method's map for the one image ``x`` (normalised, (1, 3, H, W)) on a :func:`private_copy`."""
    from captum import attr

    block = check_request(model, method, block, class_index)
    start = time.perf_counter()
    x = x.detach().clone().requires_grad_(True)  # Captum differentiates with respect to the image
    if class_index is None:
        with torch.no_grad():
            class_index = int(model(x.detach())[0].argmax())
    counted = _Counted(model, method, settings, progress)
    size = x.shape[-2:]
    if method in CAM_METHODS:
        layer = model.get_submodule(block)
        if method == "grad-cam":
            cam = attr.LayerGradCam(counted, layer).attribute(x, target=class_index, relu_attributions=True)
            raw = F.interpolate(cam.detach(), size=size, mode="bilinear", align_corners=False)[0, 0]
        else:
            raw = attr.GuidedGradCam(counted, layer).attribute(x, target=class_index).detach()[0].abs().sum(0)
    elif method == "integrated-gradients":
        baseline = torch.full_like(x, -1.0)  # a black image after normalisation
        ig = attr.IntegratedGradients(counted)
        kwargs = {"baselines": baseline, "target": class_index, "n_steps": settings.steps, "internal_batch_size": 8}
        if settings.smooth:
            found = attr.NoiseTunnel(ig).attribute(
                x, nt_type="smoothgrad", nt_samples=settings.smooth_samples, stdevs=0.15, **kwargs
            )
        else:
            found = ig.attribute(x, **kwargs)
        raw = found.detach()[0].abs().sum(0)
    elif method == "occlusion":
        channels = x.shape[1]
        found = attr.Occlusion(counted).attribute(
            x,
            target=class_index,
            sliding_window_shapes=(channels, settings.window, settings.window),
            strides=(channels, settings.stride, settings.stride),
            baselines=0.0,  # mid-grey after normalisation
            perturbations_per_eval=8,
        )
        raw = found.detach()[0].mean(0)
    else:
        raw = attr.Saliency(counted).attribute(x, target=class_index, abs=True).detach()[0].amax(0)
    return Attribution(
        method,
        class_index,
        label(class_index),
        block if method in CAM_METHODS else None,
        time.perf_counter() - start,
        raw.float().cpu().numpy(),
    )


class _Counted(nn.Module):
    """The model as Captum's forward function, reporting progress as its calls come in."""

    def __init__(self, model: InceptionNetwork, method: str, settings: Settings, progress: Progress | None) -> None:
        super().__init__()
        self.model = model
        self.progress = progress
        self.calls = 0
        self.method = method
        self.expected = _expected_calls(method, settings, model.config.input_size)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.progress is not None:
            self.progress(min(self.calls / self.expected, 1.0), f"{self.method}: pass {self.calls} of ~{self.expected}")
        return self.model(x)


def _expected_calls(method: str, settings: Settings, size: int) -> int:
    if method == "integrated-gradients":
        per_run = -(-settings.steps // 8)
        return per_run * (settings.smooth_samples if settings.smooth else 1)
    if method == "occlusion":
        side = (size - settings.window) // settings.stride + 1 + int((size - settings.window) % settings.stride > 0)
        return -(-side * side // 8) + 1
    return 2 if method == "guided-grad-cam" else 1


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
    """Cascading randomisation from the head down, a component at a time (Adebayo et al. 2018).

    Returns each method's original map, and for each method and step the rank correlation of its map with
    the original and the map itself (as a thumbnail). The class is fixed to the original top-1 (or
    ``class_index``) throughout.
    """
    for method in methods:
        check_request(model, method, block, class_index)
    twin = private_copy(model)
    if class_index is None:
        with torch.no_grad():
            class_index = int(twin(x)[0].argmax())
    components = [c for c in reversed(twin.components)]
    total = len(methods) * (len(components) + 1)
    done = 0

    def each(method: str) -> Attribution:
        nonlocal done
        result = explain(twin, x, method, label, block, class_index, settings)
        done += 1
        if progress is not None:
            progress(done / total, f"{method}, {done} of {total} maps")
        return result

    original = {method: each(method) for method in methods}
    steps: dict[str, list[SanityStep]] = {method: [] for method in methods}
    generator = torch.Generator().manual_seed(0)
    for comp in components:
        randomise_([twin.get_submodule(name) for name in comp.modules], generator)
        for method in methods:
            found = each(method)
            similarity = rank_correlation(original[method].heatmap, found.heatmap)
            steps[method].append(SanityStep(comp.title, similarity, thumbnail(found.heatmap)))
    return original, steps


def display(heatmap: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] for drawing: negative values clipped, the top 0.5% saturated (pixel-level maps
    have a few extreme pixels that would otherwise leave the rest black)."""
    values = np.clip(heatmap, 0, None)
    peak = float(np.percentile(values, 99.5))
    peak = peak if peak > 0 else float(values.max())
    return np.clip(values / peak, 0, 1).astype(np.float32) if peak > 0 else values.astype(np.float32)
