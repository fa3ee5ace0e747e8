"""Does the network use a concept for a class? TCAV (Kim et al., ICML 2018) through ``captum.concept``.

A concept is a set of images showing it (stripes, dots, ...). At a block, a linear classifier separates the
concept's activations from those of random images; its normal is the concept activation vector (CAV). The
TCAV score of a class is the share of the class's images whose class logit rises along the CAV (the sign of the
directional derivative). One CAV is a chance: the score counts only if it differs from what random "concepts"
get. So the concept is tried against ``runs`` random sets, and random set 0 against the same ``runs`` sets,
and a two-sided t-test (Welch's) compares the two lists of scores; ``p < alpha`` is significant.

Captum sets hooks on the blocks it reads: the model passed must be a private copy, never a shared one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

MIN_IMAGES = 10  # a CAV from fewer images than this is noise
MIN_RUNS = 10  # the t-test's samples: at least ten random counter-sets


@dataclass(frozen=True)
class ConceptScore:
    """One concept at one block: the mean TCAV score over the runs, each run's, the random sets' and the test."""

    concept: str
    block: str
    score: float
    scores: tuple[float, ...]
    random_scores: tuple[float, ...]
    p_value: float
    significant: bool

    def to_json(self) -> dict[str, object]:
        return {
            "concept": self.concept,
            "block": self.block,
            "score": round(self.score, 4),
            "p_value": float(f"{self.p_value:.4g}"),
            "significant": self.significant,
            "scores": [round(s, 4) for s in self.scores],
            "random_scores": [round(s, 4) for s in self.random_scores],
        }


def random_sets(pool: Tensor, runs: int, size: int, seed: int) -> list[Tensor]:
    """``runs + 1`` sets of ``size`` images each, drawn without replacement within a set from ``pool``."""
    generator = np.random.default_rng(seed)
    size = min(size, len(pool))
    return [pool[torch.from_numpy(generator.choice(len(pool), size, replace=False))] for _ in range(runs + 1)]


def tcav(
    model: nn.Module,
    blocks: Sequence[str],
    class_index: int,
    images: Tensor,
    concepts: Mapping[str, Tensor],
    randoms: Sequence[Tensor],
    alpha: float = 0.05,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> list[ConceptScore]:
    """Each concept's TCAV score for ``class_index`` at each block, with its significance over ``len(randoms) - 1``
    runs. ``images``: the class's examples; every tensor normalised (N, 3, H, W) on the model's device. The same
    seed gives the same scores."""
    from captum.concept import TCAV, Concept
    from scipy.stats import ttest_ind

    runs = len(randoms) - 1
    if runs < MIN_RUNS:
        raise ValueError(f"TCAV's significance needs at least {MIN_RUNS} random sets, not {runs}")
    for name, found in {"the class's images": images, **concepts}.items():
        if len(found) < MIN_IMAGES:
            raise ValueError(f"{name}: {len(found)} images; a concept or class needs at least {MIN_IMAGES}")

    def concept(number: int, name: str, data: Tensor) -> Concept:
        return Concept(number, name, torch.utils.data.DataLoader(data, batch_size=batch_size))

    random_concepts = [concept(i, f"random {i}", data) for i, data in enumerate(randoms)]
    mine = [concept(len(randoms) + i, name, data) for i, (name, data) in enumerate(concepts.items())]
    experiments = [[c, random_concepts[r]] for c in [*mine, random_concepts[0]] for r in range(1, runs + 1)]
    model.eval()
    # Captum's classifier shuffles and starts from torch's generator: seeded here, and the caller's left as it was.
    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory(prefix="explorer-tcav-") as where:
        torch.manual_seed(seed)  # Captum keeps CAVs and activations here
        interpreter = TCAV(model, list(blocks), model_id="explorer", save_path=where + "/")
        found: dict[str, dict[str, dict[str, Tensor]]] = {}
        for number, chunk in enumerate(_chunks(experiments, runs)):
            if progress is not None:
                progress(number / (len(mine) + 1), f"CAVs and scores: {chunk[0][0].name} against {runs} random sets")
            found.update(interpreter.interpret(images, chunk, target=class_index))
    if progress is not None:
        progress(1.0, "done")

    def run_scores(c: Concept, block: str) -> tuple[float, ...]:
        keys = [f"{c.id}-{random_concepts[r].id}" for r in range(1, runs + 1)]
        return tuple(float(found[k][block]["sign_count"][0]) for k in keys)

    scores = []
    for block in blocks:
        baseline = run_scores(random_concepts[0], block)
        for c in mine:
            own = run_scores(c, block)
            p_value = float(ttest_ind(own, baseline, equal_var=False).pvalue)
            p_value = 1.0 if np.isnan(p_value) else p_value  # identical constant lists: no difference at all
            scores.append(ConceptScore(c.name, block, float(np.mean(own)), own, baseline, p_value, p_value < alpha))
    return scores


def _chunks(experiments: list, runs: int) -> list[list]:
    return [experiments[i : i + runs] for i in range(0, len(experiments), runs)]
