"""Grad-CAM: which parts of the image a block's output weighs for a class (Selvaraju et al., 2017), by Captum."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from explorer.explain.attribution import check_request
from explorer.nets import InceptionNetwork
from explorer.runtime.results import GradCam


def grad_cam(
    model: InceptionNetwork, x: Tensor, block: str, class_index: int | None, label: Callable[[int], str]
) -> GradCam:
    """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block`` for the one image ``x``.

    Captum's ``LayerGradCam`` sets a hook on the block while it runs: call this on the model's private copy
    for attribution (:func:`explorer.runtime.private.private_copy`), never on a model other sessions use.
    """
    from captum.attr import LayerGradCam

    check_request(model, "grad-cam", block, class_index)
    x = x.detach()
    with torch.no_grad():
        logits = model(x)
    index = int(logits[0].argmax()) if class_index is None else class_index
    cam = LayerGradCam(model, model.get_submodule(block)).attribute(x, target=index, relu_attributions=True).detach()
    return packed(cam, logits, index, block, label, x.shape[-1])


def packed(cam: Tensor, logits: Tensor, index: int, block: str, label: Callable[[int], str], size: int) -> GradCam:
    """A block's class activation map (1, 1, h, w) as the page shows it: enlarged to the input's ``size`` and
    scaled to its peak, with the class's probability."""
    with torch.no_grad():
        upsampled = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        peak = upsampled.max()
        normalised = upsampled / peak if peak > 0 else upsampled
        probability = float(logits[0].float().softmax(0)[index])
    return GradCam(
        block=block,
        class_index=index,
        label=label(index),
        probability=probability,
        cam=cam[0, 0].float().cpu().numpy(),
        heatmap=normalised.float().cpu().numpy(),
    )
