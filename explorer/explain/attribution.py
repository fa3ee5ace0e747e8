"""Why did it say that? Attribution maps through Captum, and the sanity check that tells which follow the model.

Methods (Captum's implementations): Grad-CAM and Guided Grad-CAM at a block (Selvaraju et al. 2017),
Integrated Gradients (Sundararajan et al. 2017, optionally smoothed with SmoothGrad, Smilkov et al.
2017), occlusion (Zeiler and Fergus 2014) and saliency (Simonyan et al. 2014). Each gives a map over
the input image for one class.

Captum sets hooks on the modules it looks at (a layer's forward hook for the CAMs, backward hooks on
every ReLU for guided backpropagation), so it never runs on the shared model: it runs on the engine's
private copy (:mod:`explorer.runtime.private`, ReLUs not in place), one call at a time. The sanity check
is :mod:`explorer.explain.sanity`; :class:`explorer.explain.Explainer` runs both on an engine.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.nets import InceptionNetwork

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
    """One method's map for the one image ``x`` (normalised, (1, 3, H, W)) on a private copy
    (:func:`explorer.runtime.private.private_copy`)."""
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


def display(heatmap: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] for drawing: negative values clipped, the top 0.5% saturated (pixel-level maps
    have a few extreme pixels that would otherwise leave the rest black)."""
    values = np.clip(heatmap, 0, None)
    peak = float(np.percentile(values, 99.5))
    peak = peak if peak > 0 else float(values.max())
    return np.clip(values / peak, 0, 1).astype(np.float32) if peak > 0 else values.astype(np.float32)
