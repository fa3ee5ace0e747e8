"""The figures people publish for the network's depth and size, and the convention each is said to follow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedFigure:
    """A number published for the released Inception-ResNet-v2, and what it is said to count."""

    value: int
    says: str
    source: str
    measure: str  # the convention key (or "params" / "keras_params") it would follow
    tolerance: int = 0  # for figures given as "about ..." or rounded

    def matches(self, value: int) -> bool:
        return abs(value - self.value) <= self.tolerance


PUBLISHED_FIGURES: tuple[PublishedFigure, ...] = (
    PublishedFigure(164, "164 layers deep", "MathWorks' pretrained-network table; many blogs", "longest_conv_fc_path"),
    PublishedFigure(449, "Depth 449", "Keras applications table", "weighted_layers"),
    PublishedFigure(780, "about 780 layers", "len(model.layers) in Keras", "keras_layers", tolerance=5),
    PublishedFigure(244, "244 convolutions", "Conv2D layers of the Keras / TF-slim network", "conv_layers"),
    PublishedFigure(55_800_000, "55.8M parameters", "timm", "params", tolerance=50_000),
    PublishedFigure(55_900_000, "55.9M parameters", "Keras applications table", "keras_params", tolerance=50_000),
)
