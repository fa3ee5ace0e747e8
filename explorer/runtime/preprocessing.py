"""What the tf_in1k weights expect of an image: resized, centre-cropped, normalised (as timm's eval transform)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


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
#: What Inception-v4's tf_in1k weights expect: the same, with a 0.875 centre crop (timm's pretrained config).
TF_IN1K_V4 = Preprocessing(crop_pct=0.875)


def preprocessing_for(variant: str) -> Preprocessing:
    """The preprocessing a network's trained weights expect (random weights do not mind)."""
    return TF_IN1K_V4 if variant == "inception-v4" else TF_IN1K


def crop_geometry(width: int, height: int, preprocessing: Preprocessing = TF_IN1K) -> tuple[int, int, int, int]:
    """The resized size and the crop's corner: (new width, new height, left, top)."""
    short, long = min(width, height), max(width, height)
    target_long = int(preprocessing.resize_to * long / short)
    new_width, new_height = (
        (preprocessing.resize_to, target_long) if width <= height else (target_long, preprocessing.resize_to)
    )
    size = preprocessing.input_size
    return new_width, new_height, round((new_width - size) / 2.0), round((new_height - size) / 2.0)


def crop_for_network(image: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Image.Image:
    """Resize the shorter side to ``input_size / crop_pct`` (bicubic) and take the centre square.

    What torchvision's ``Resize`` then ``CenterCrop`` (timm's eval transform) give, to within one
    intensity level from Pillow's integer rounding, computed by resampling only the source region
    the crop keeps: the same filter over the same pixels, without enlarging the parts that are cut
    away (a 1x5000 strip stays cheap).
    """
    width, height = image.size
    new_width, new_height, left, top = crop_geometry(width, height, preprocessing)
    size = preprocessing.input_size
    sx, sy = width / new_width, height / new_height
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box)


def crop_on_device(image: Image.Image, device: torch.device, preprocessing: Preprocessing = TF_IN1K) -> Tensor | None:
    """:func:`crop_for_network`'s pixels computed on ``device`` (a GPU): (H, W, 3) uint8, or None for an image
    too elongated to resize whole (the CPU's crop handles those).

    torch's antialiased bicubic resize uses Pillow's filter: the whole image is resized, then the centre is
    cut; on the samples a fifth of an intensity level from Pillow's on average, a few levels at most at sharp
    edges (a test checks), in a fraction of the CPU's time.
    """
    pixels = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).to(device, non_blocking=True)
    return crop_pixels(pixels.permute(2, 0, 1), preprocessing)


def crop_pixels(pixels: Tensor, preprocessing: Preprocessing = TF_IN1K) -> Tensor | None:
    """:func:`crop_on_device` for pixels already on the device, (3, H, W) uint8 (as torchvision.io decodes them)."""
    height, width = pixels.shape[1:]
    new_width, new_height, left, top = crop_geometry(width, height, preprocessing)
    size = preprocessing.input_size
    if new_width * new_height > 4 * size * size:
        return None
    resized = F.interpolate(pixels[None].float(), (new_height, new_width), mode="bicubic", antialias=True)
    crop = resized[0, :, top : top + size, left : left + size]
    return crop.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


def normalise(crops: Tensor, preprocessing: Preprocessing = TF_IN1K) -> Tensor:
    """(B, H, W, 3) uint8 crops, on any device, as the normalised (B, 3, H, W) float tensor the network takes.

    The arithmetic of torchvision's ``pil_to_tensor``, ``to_dtype(scale=True)`` and ``normalize``
    (a test checks they agree exactly), written out so that the first result does not wait for
    torchvision's import: about two seconds, since it loads torch's compiler.
    """
    pixels = crops.permute(0, 3, 1, 2).float()
    mean = torch.tensor(preprocessing.mean, device=crops.device).reshape(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std, device=crops.device).reshape(1, 3, 1, 1)
    return (pixels / 255 - mean) / std


def to_tensor(crop: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Tensor:
    """The cropped RGB image as the normalised (1, 3, H, W) float tensor the network takes (:func:`normalise`)."""
    return normalise(torch.from_numpy(np.array(crop.convert("RGB"), dtype=np.uint8))[None], preprocessing)
