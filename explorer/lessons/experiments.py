"""The residual-scaling experiment: one image through the same network with different residuals.

The paper (Section 3.3) reports that with more than about 1,000 filters the residual variants
"died" early in training unless the residuals were scaled down by 0.1 to 0.3 before the
addition. Inference cannot show training instability, but it shows its cause: what each block
adds relative to what it receives, and how the activations grow with depth, for

- the released scales (0.17 / 0.10 / 0.20),
- no scaling (1.0 everywhere),
- scales the user picks,
- no shortcuts, residuals still scaled: each block passes on only its scaled branch, so the scale
  compounds block after block (this shows the scale, not the missing shortcut),
- no shortcuts, unscaled: each block passes on its branch as it is, a plain Inception network built
  from the same blocks: the honest counterfactual without residual connections.

All runs use the same weights (the same seeded random ones, or the same loaded file), so only
the residuals differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from explorer.nets import InceptionNetwork, NetworkConfig, make_config
from explorer.nets.weights import WeightsInfo
from explorer.runtime import BlockStats, Engine

ModelMaker = Callable[[NetworkConfig], tuple[InceptionNetwork, WeightsInfo]]


@dataclass(frozen=True)
class Setting:
    label: str
    scales: tuple[float, float, float]
    shortcuts: bool = True


@dataclass(frozen=True)
class BlockStatistics:
    block: str
    depth: int
    stats: BlockStats  # the engine's, as it computed them


@dataclass(frozen=True)
class Run:
    setting: Setting
    top1: str
    top1_probability: float
    blocks: tuple[BlockStatistics, ...]

    def std_of(self, block: str) -> float:
        return next(b.stats.std for b in self.blocks if b.block == block)


def settings(custom: tuple[float, float, float] | None = None) -> list[Setting]:
    r = make_config("released").scales
    released = (r.a, r.b, r.c)
    chosen = [
        Setting(f"released scales ({r.a:g} / {r.b:g} / {r.c:g})", released),
        Setting("no scaling (1.0)", (1.0, 1.0, 1.0)),
    ]
    if custom is not None:
        chosen.append(Setting(f"your scales ({custom[0]:g} / {custom[1]:g} / {custom[2]:g})", custom))
    chosen.append(Setting("no shortcuts, scaled branches", released, shortcuts=False))
    chosen.append(Setting("no shortcuts, unscaled (plain Inception)", (1.0, 1.0, 1.0), shortcuts=False))
    return chosen


def run_experiment(image: Image.Image, make_model: ModelMaker, chosen: list[Setting]) -> list[Run]:
    """The image through the released network once per setting; per-block statistics of each."""
    runs = []
    for setting in chosen:
        config = make_config("released", scales=setting.scales, shortcuts=setting.shortcuts)
        model, info = make_model(config)
        result = Engine(model, info, device="cpu", top_k=1).run(image)
        blocks = tuple(BlockStatistics(b.name, depth, b.stats) for depth, b in enumerate(result.blocks))
        runs.append(Run(setting, result.top5[0].label, result.top5[0].probability, blocks))
    return runs
