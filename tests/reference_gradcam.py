"""The hand-written Grad-CAM the explorer had before Captum's (Selvaraju et al., 2017): kept as the oracle that
explorer.explain.gradcam, now Captum's LayerGradCam, gives the same maps."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from explorer.explain.gradcam import packed
from explorer.nets import InceptionNetwork
from explorer.runtime.results import GradCam


def reference_grad_cam(
    model: InceptionNetwork, x: Tensor, block: str, class_index: int | None, label: Callable[[int], str]
) -> GradCam:
    """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block`` for the one image ``x``.

    The gradient is taken with respect to the block's output only (``torch.autograd.grad``), so
    nothing is written to the shared model's parameters and no hook is set.
    """
    x = x.requires_grad_(True)
    with torch.enable_grad():
        logits, intermediates = model.forward_intermediates(x)
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
    return packed(cam, logits, index, block, label, x.shape[-1])  # the packing is shared; the CAM is not
