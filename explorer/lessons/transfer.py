"""A new head on a frozen network: the study card's Keras code, live.

The card (``../shared/seeds/``, the Keras study card) builds ``InceptionResNetV2(include_top=False)``,
pools its 8x8x1536 feature map globally, sets ``base.trainable = False`` and trains one new dense layer.
Here: :func:`pooled_features` is ``include_top=False`` plus global average pooling (computed once per
image: the network is frozen, so its features never change), :func:`train_head` trains the new dense
layer on them with softmax cross-entropy, :func:`leave_one_out` tests it on each image with a head
trained without that image, and :class:`HeadShapes` names the shapes and parameter counts that
``trainable = False`` means. Everything is a value; the shared network is only read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor, nn

from explorer.nets import InceptionNetwork
from explorer.runtime.images import ImageError
from explorer.runtime.preprocessing import Preprocessing, crop_for_network, preprocessing_for, to_tensor
from explorer.text.usertext import quoted

MIN_CLASSES, MAX_CLASSES = 2, 5


class TransferError(ValueError):
    """Classes that cannot be trained on, said in one line for people."""


@dataclass(frozen=True)
class Example:
    """One training image: its class and its pooled features (float32, on the CPU)."""

    label: str
    name: str
    features: Tensor


@dataclass(frozen=True)
class HeadShapes:
    """What the card's code builds, with this network's numbers."""

    input: tuple[int, ...]
    feature_map: tuple[int, ...]  # include_top=False
    pooled: tuple[int, ...]  # GlobalAveragePooling2D
    logits: tuple[int, ...]  # the new Dense layer
    frozen_params: int  # base.trainable = False: the backbone's, the old classifier left out
    trainable_params: int  # the new Dense layer's weights and biases


@dataclass(frozen=True)
class TrainedHead:
    classes: tuple[str, ...]
    weight: Tensor  # (classes, features)
    bias: Tensor
    losses: tuple[float, ...]  # training loss per step

    def probabilities(self, features: Tensor) -> Tensor:
        return torch.softmax(features @ self.weight.T + self.bias, dim=-1)

    def classify(self, features: Tensor) -> list[tuple[str, float]]:
        """The classes for one image's features, most likely first."""
        probabilities = self.probabilities(features.reshape(1, -1))[0]
        order = probabilities.argsort(descending=True)
        return [(self.classes[int(i)], float(probabilities[i])) for i in order]


def pooled_features(
    model: InceptionNetwork, images: Sequence[Image.Image], preprocessing: Preprocessing | None = None
) -> Tensor:
    """``include_top=False`` + global average pooling: (N, num_features), float32 on the CPU."""
    preprocessing = preprocessing or preprocessing_for(model.config.variant)
    device = model.classifier.weight.device
    batch = torch.cat([to_tensor(crop_for_network(image, preprocessing), preprocessing) for image in images])
    with torch.inference_mode():
        return model.global_pool(model.forward_features(batch.to(device))).float().cpu()


def head_shapes(model: InceptionNetwork, classes: int) -> HeadShapes:
    """The shapes at each step for one image, and the frozen and trainable parameter counts."""
    size = model.config.input_size
    with torch.device("meta"):
        x = torch.empty(1, model.config.in_channels, size, size)
    meta = model if model.classifier.weight.device.type == "meta" else None
    if meta is None:  # shapes only: trace the same architecture on the meta device, no arithmetic
        from explorer.nets import model_from_config

        meta = model_from_config(model.config, seed=None, device="meta")
    feature_map = meta.forward_features(x)
    pooled = meta.global_pool(feature_map)
    # the new head replaces the old one whole: its classifier and, in a Keras head, the hidden layers before it
    old_head = [model.classifier] + ([model.head_hidden] if model.head_hidden is not None else [])
    classifier = sum(p.numel() for part in old_head for p in part.parameters())
    return HeadShapes(
        input=tuple(x.shape),
        feature_map=tuple(feature_map.shape),
        pooled=tuple(pooled.shape),
        logits=(1, classes),
        frozen_params=sum(p.numel() for p in model.parameters()) - classifier,
        trainable_params=pooled.shape[1] * classes + classes,
    )


def check_images(classes: dict[str, Sequence[tuple[str, bytes]]]) -> None:
    """:class:`TransferError` naming an image given twice (the same bytes, under any name): in two classes it
    would teach both, and left out it would still be in the training set (leave-one-out then reports 50%)."""
    seen: dict[str, tuple[str, str]] = {}
    for label, images in classes.items():
        for name, data in images:
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                first_label, first_name = seen[digest]
                where = (
                    f"twice in class {quoted(label, 'plain')}"
                    if first_label == label
                    else f"in class {quoted(first_label, 'plain')} and in class {quoted(label, 'plain')}"
                )
                also = "" if first_name == name else f" (as {quoted(first_name, 'plain')} and {quoted(name, 'plain')})"
                raise TransferError(f"the same image is {where}{also}: an image counts once, in one class")
            seen[digest] = (label, name)


def extract(
    classes: dict[str, Sequence[tuple[str, bytes]]],
    features_of: Callable[[bytes], Tensor],
    progress: Callable[[int, int], None] | None = None,
) -> list[Example]:
    """Each image's pooled features (``features_of``), as examples; a file that cannot be read is a
    :class:`TransferError` naming its class and the file."""
    check_classes(classes)
    check_images(classes)
    total, examples = sum(len(images) for images in classes.values()), []
    for label, images in classes.items():
        for name, data in images:
            try:
                examples.append(Example(label, name, features_of(data)))
            except ImageError as error:
                raise TransferError(f"class {quoted(label, 'plain')}, {quoted(name, 'plain')}: {error}") from None
            if progress is not None:
                progress(len(examples), total)
    return examples


def check_classes(examples: dict[str, Sequence[object]]) -> None:
    """:class:`TransferError` unless there are 2 to 5 named classes, each with at least one image."""
    named = {name.strip(): items for name, items in examples.items()}
    if any(not name for name in named):
        raise TransferError("every class needs a name")
    if len(named) != len(examples):
        raise TransferError("two classes have the same name; give each its own")
    if not MIN_CLASSES <= len(named) <= MAX_CLASSES:
        raise TransferError(f"make {MIN_CLASSES} to {MAX_CLASSES} classes (there are {len(named)})")
    empty = [name for name, items in named.items() if not items]
    if empty:
        raise TransferError(f"class {quoted(empty[0], 'plain')} has no images yet: add a sample or an upload")


def train_head(
    examples: Sequence[Example],
    steps: int = 100,
    logit_step: float = 0.5,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> TrainedHead:
    """A new dense layer (softmax) on the frozen features, trained full-batch with Adam.

    The features are centred and scaled to unit average variance first (one mean vector and one number),
    so that one learning rate suits random and trained backbones alike; the returned head has both folded
    into its weights and bias, so it takes the features as the network gives them. Adam moves every weight by
    about its learning rate in its first steps, whatever the gradient, so a logit moves by the rate times the
    features' L1 norm (about 1,200 here): the rate is ``logit_step`` over that norm, so that the loss falls
    from the first step instead of jumping (at 0.05 it jumped from 0.7 to 29 on the second step).
    """
    classes = tuple(dict.fromkeys(e.label for e in examples))
    check_classes({c: [e for e in examples if e.label == c] for c in classes})
    x = torch.stack([e.features for e in examples]).float()
    y = torch.tensor([classes.index(e.label) for e in examples])
    centre = x.mean(0)
    scale = (x - centre).pow(2).mean().sqrt().clamp_min(1e-12)
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(x.shape[1], len(classes))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
        head.bias.zero_()
    standardised = (x - centre) / scale
    rate = logit_step / standardised.abs().sum(1).mean().clamp_min(1e-12).item()
    optimiser = torch.optim.Adam(head.parameters(), lr=rate, weight_decay=weight_decay)
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(head(standardised), y)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    with torch.no_grad():
        weight = head.weight / scale
        return TrainedHead(classes, weight.clone(), head.bias - weight @ centre, tuple(losses))


def leave_one_out(examples: Sequence[Example], steps: int = 100) -> tuple[float, list[tuple[str, str, str]]]:
    """Accuracy of heads each trained without one image, on that image; and (image, truth, guess) per image.

    An image whose class has no other image cannot be left out (its class would vanish): it is skipped.
    """
    outcomes = []
    for index, held_out in enumerate(examples):
        rest = [e for i, e in enumerate(examples) if i != index]
        if not any(e.label == held_out.label for e in rest) or len({e.label for e in rest}) < MIN_CLASSES:
            continue
        guess = train_head(rest, steps).classify(held_out.features)[0][0]
        outcomes.append((held_out.name, held_out.label, guess))
    if not outcomes:
        return float("nan"), []
    return sum(truth == guess for _, truth, guess in outcomes) / len(outcomes), outcomes


def head_checkpoint(model: InceptionNetwork, head: TrainedHead, backbone: str) -> bytes:
    """The frozen network with the new head in place of its classifier, as a safetensors file that the Weights
    box and ``--weights FILE`` load again: the class names and the backbone's weights identity in its metadata."""
    from safetensors.torch import save

    name = next(path for path, module in model.named_modules() if module is model.classifier)
    state = {  # the new head replaces the whole old one, hidden layers (a Keras head's) and all
        key: value.detach().cpu().contiguous()
        for key, value in model.state_dict().items()
        if not key.startswith("head_hidden.")
    }
    state[f"{name}.weight"] = head.weight.detach().cpu().float().contiguous()
    state[f"{name}.bias"] = head.bias.detach().cpu().float().contiguous()
    metadata = {"class_names": json.dumps(list(head.classes)), "backbone": backbone, "made_by": "New head page"}
    return save(state, metadata=metadata)
