"""A head with a known answer, for checks that need confident predictions without real weights.

Each of the first N classes becomes the (centred, normalised) pooled features of one image, so
in float32 image i is class i with a clear margin. Lower precision then has to keep that answer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from explorer.nets import InceptionResNet


@torch.no_grad()
def set_prototype_head(model: InceptionResNet, images: Tensor, scale: float = 30.0) -> None:
    features = model.global_pool(model.forward_features(images)).float()
    centred = features - features.mean(0, keepdim=True)
    prototypes = centred / centred.norm(dim=1, keepdim=True)
    model.classifier.weight.zero_()
    model.classifier.bias.zero_()
    model.classifier.weight[: len(images)] = prototypes * scale
    model.classifier.bias[: len(images)] = -(prototypes * scale) @ features.mean(0)
