"""What the engine returns: plain values (numpy arrays, numbers, strings) to cache, pickle and show anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True)
class GradCam:
    block: str
    class_index: int
    label: str
    probability: float
    cam: np.ndarray  # (h, w) at the block's resolution, unnormalised, >= 0
    heatmap: np.ndarray  # (input_size, input_size), scaled to [0, 1]
