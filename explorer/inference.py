"""Live inference: preprocessing, one forward pass to every block's maps and statistics, Grad-CAM.

An :class:`Engine` owns one model on one device and is shared read-only by every session: it
keeps no per-image state, and each call returns an :class:`InferenceResult` made of plain values
(numpy arrays, numbers, strings) that can be cached, pickled and shown anywhere.

Per block, the maps are reduced on the device (channel mean, channel max, the k channels with the
highest mean activation) together with the statistics, then everything the host needs is packed
into one buffer and copied once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from explorer.model import InceptionResNetV2
from explorer.weights import WeightsInfo

# --------------------------------------------------------------------------------------------
# Preprocessing and labels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """What the tf_in1k weights expect (timm's pretrained config for inception_resnet_v2)."""

    input_size: int = 299
    interpolation: str = "bicubic"
    crop_pct: float = 0.8975
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def resize_to(self) -> int:
        return math.floor(self.input_size / self.crop_pct)


TF_IN1K = Preprocessing()


def crop_for_network(image: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Image.Image:
    """Resize the shorter side to ``input_size / crop_pct`` (bicubic) and take the centre square.

    What torchvision's ``Resize`` then ``CenterCrop`` (timm's eval transform) give, to within one
    intensity level from Pillow's integer rounding, computed by resampling only the source region
    the crop keeps: the same filter over the same pixels, without enlarging the parts that are cut
    away (a 1x5000 strip stays cheap).
    """
    width, height = image.size
    short, long = min(width, height), max(width, height)
    target_long = int(preprocessing.resize_to * long / short)
    new_width, new_height = (
        (preprocessing.resize_to, target_long) if width <= height else (target_long, preprocessing.resize_to)
    )
    size = preprocessing.input_size
    left = round((new_width - size) / 2.0)
    top = round((new_height - size) / 2.0)
    sx, sy = width / new_width, height / new_height
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box)


def to_tensor(crop: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Tensor:
    """The cropped RGB image as the normalised (1, 3, H, W) float tensor the network takes."""
    tensor = TF.to_dtype(TF.pil_to_tensor(crop), torch.float32, scale=True)
    return TF.normalize(tensor, list(preprocessing.mean), list(preprocessing.std)).unsqueeze(0)


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names bundled with torchvision (no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockStats:
    mean: float
    std: float
    zero_fraction: float
    residual_ratio: float | None  # |scaled residual| / |shortcut|, for residual blocks


@dataclass(frozen=True)
class BlockMaps:
    name: str
    shape: tuple[int, int, int]  # channels, height, width
    mean: np.ndarray  # (H, W): mean over channels
    max: np.ndarray  # (H, W): max over channels
    top_channels: tuple[int, ...]  # the k channels with the highest mean activation
    top_maps: np.ndarray  # (k, H, W)
    stats: BlockStats


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    index: int


@dataclass(frozen=True)
class InferenceResult:
    weights: str
    random_weights: bool
    device: str
    variant: str
    image: np.ndarray  # (H, W, 3) uint8: what the network saw, after resizing and cropping
    top5: tuple[Prediction, ...]
    blocks: tuple[BlockMaps, ...]
    timings_ms: dict[str, float]
    notes: tuple[str, ...] = field(default=())

    def block(self, name: str) -> BlockMaps:
        return next(b for b in self.blocks if b.name == name)

    def to_json(self) -> dict:
        """Everything but the maps, in forward order."""
        return {
            "weights": self.weights,
            "random_weights": self.random_weights,
            "device": self.device,
            "variant": self.variant,
            "top5": [{"label": p.label, "probability": p.probability, "index": p.index} for p in self.top5],
            "blocks": [
                {
                    "name": b.name,
                    "shape": list(b.shape),
                    "statistics": {
                        "mean": b.stats.mean,
                        "std": b.stats.std,
                        "zero_fraction": b.stats.zero_fraction,
                        "residual_ratio": b.stats.residual_ratio,
                    },
                    "top_channels": list(b.top_channels),
                }
                for b in self.blocks
            ],
            "timings_ms": self.timings_ms,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def pick_device(preference: str = "auto") -> tuple[torch.device, str | None]:
    """The device to run on, and a note when the preference could not be met."""
    if preference == "cpu":
        return torch.device("cpu"), None
    if preference not in ("auto", "cuda"):
        raise ValueError(f"unknown device {preference!r}; expected auto, cpu or cuda")
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    return torch.device("cpu"), ("CUDA is not available here: running on the CPU" if preference == "cuda" else None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Engine:
    """One model on one device, shared read-only by every caller."""

    def __init__(
        self,
        model: InceptionResNetV2,
        weights: WeightsInfo,
        device: str = "auto",
        top_k: int = 8,
        preprocessing: Preprocessing = TF_IN1K,
    ) -> None:
        self.device, note = pick_device(device)
        self.notes: tuple[str, ...] = (note,) if note else ()
        # Inference only: no parameter needs a gradient (Grad-CAM differentiates activations).
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.weights = weights
        self.top_k = top_k
        self.preprocessing = preprocessing
        self.labels = imagenet_labels() if model.config.num_classes == 1000 else None

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class {index}"

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, Tensor]:
        crop = crop_for_network(image, self.preprocessing)
        return np.asarray(crop, dtype=np.uint8).copy(), to_tensor(crop, self.preprocessing)

    @torch.inference_mode()
    def run(self, image: Image.Image, notes: Sequence[str] = ()) -> InferenceResult:
        """Top-5 and every block's maps and statistics for one RGB image."""
        start = time.perf_counter()
        crop, x = self.prepare(image)
        x = x.to(self.device)
        _sync(self.device)
        prepared = time.perf_counter()

        logits, intermediates, residuals = self.model.forward_intermediates_and_residuals(x)
        _sync(self.device)
        forwarded = time.perf_counter()

        parts, layout = self._reduce(logits, intermediates, residuals)
        packed = torch.cat([p.reshape(-1).float() for p in parts])
        _sync(self.device)
        reduced = time.perf_counter()

        host = packed.cpu().numpy()
        copied = time.perf_counter()

        result = self._unpack(host, layout, crop, notes)
        timings = {
            "preprocess": prepared - start,
            "forward": forwarded - prepared,
            "maps": reduced - forwarded,
            "copy": copied - reduced,
        }
        timings["total"] = time.perf_counter() - start
        return dataclasses.replace(result, timings_ms={k: v * 1000 for k, v in timings.items()})

    def _reduce(
        self, logits: Tensor, intermediates: dict[str, Tensor], residuals: dict[str, Tensor]
    ) -> tuple[list[Tensor], list[tuple]]:
        """Every host-bound number as device tensors, and how to read them back."""
        probabilities = logits.float().softmax(1)[0]
        top = probabilities.topk(5)
        parts: list[Tensor] = [top.values, top.indices.float()]
        layout: list[tuple] = []
        previous = None
        for name, out in intermediates.items():
            a = out[0].float()
            channels, height, width = a.shape
            k = min(self.top_k, channels)
            channel_means = a.mean((1, 2))
            top_channels = channel_means.topk(k).indices
            stats = [a.mean(), a.std(), (a == 0).float().mean()]
            if name in residuals and previous is not None:
                stats.append(residuals[name][0].float().norm() / previous[0].float().norm().clamp_min(1e-12))
            parts += [a.mean(0), a.amax(0), top_channels.float(), a[top_channels], torch.stack(stats)]
            layout.append((name, (channels, height, width), k, len(stats)))
            previous = out
        return parts, layout

    def _unpack(self, host: np.ndarray, layout: list[tuple], crop: np.ndarray, notes: Sequence[str]) -> InferenceResult:
        offset = 0

        def take(n: int) -> np.ndarray:
            nonlocal offset
            chunk = host[offset : offset + n]
            offset += n
            return chunk

        probabilities, indices = take(5), take(5).astype(int)
        top5 = tuple(
            Prediction(self.label(int(i)), float(p), int(i)) for p, i in zip(probabilities, indices, strict=True)
        )
        blocks = []
        for name, (channels, height, width), k, n_stats in layout:
            mean_map = take(height * width).reshape(height, width)
            max_map = take(height * width).reshape(height, width)
            top_channels = tuple(int(c) for c in take(k))
            top_maps = take(k * height * width).reshape(k, height, width)
            stats = take(n_stats)
            blocks.append(
                BlockMaps(
                    name,
                    (channels, height, width),
                    mean_map,
                    max_map,
                    top_channels,
                    top_maps,
                    BlockStats(
                        float(stats[0]), float(stats[1]), float(stats[2]), float(stats[3]) if n_stats > 3 else None
                    ),
                )
            )
        return InferenceResult(
            weights=self.weights.source,
            random_weights=self.weights.random,
            device=str(self.device),
            variant=self.model.config.variant,
            image=crop,
            top5=top5,
            blocks=tuple(blocks),
            timings_ms={},
            notes=tuple(notes) + self.notes + self.weights.notes,
        )

    def grad_cam(self, image: Image.Image, block: str, class_index: int | None = None) -> GradCam:
        """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block``.

        The gradient is taken with respect to the block's output only (``torch.autograd.grad``),
        so nothing is written to the shared model's parameters.
        """
        _, x = self.prepare(image)
        x = x.to(self.device).requires_grad_(True)
        with torch.enable_grad():
            logits, intermediates = self.model.forward_intermediates(x)
            if block not in intermediates:
                raise ValueError(f"unknown block {block!r}")
            index = int(logits[0].argmax()) if class_index is None else class_index
            if not 0 <= index < logits.shape[1]:
                raise ValueError(f"class {index} is outside 0..{logits.shape[1] - 1}")
            activation = intermediates[block]
            (gradient,) = torch.autograd.grad(logits[0, index], activation)
        with torch.no_grad():
            weights = gradient.mean((2, 3), keepdim=True)
            cam = F.relu((weights * activation).sum(1, keepdim=True))
            size = self.preprocessing.input_size
            upsampled = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
            peak = upsampled.max()
            normalised = upsampled / peak if peak > 0 else upsampled
            probability = float(logits[0].float().softmax(0)[index])
        return GradCam(
            block=block,
            class_index=index,
            label=self.label(index),
            probability=probability,
            cam=cam[0, 0].float().cpu().numpy(),
            heatmap=normalised.float().cpu().numpy(),
        )


@dataclass(frozen=True)
class GradCam:
    block: str
    class_index: int
    label: str
    probability: float
    cam: np.ndarray  # (h, w) at the block's resolution, unnormalised, >= 0
    heatmap: np.ndarray  # (input_size, input_size), scaled to [0, 1]
