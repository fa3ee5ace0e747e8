"""Does the network use a concept for a class? TCAV (Kim et al., ICML 2018) through ``captum.concept``.

A concept is a set of images showing it (stripes, dots, ...). At a block, a linear classifier separates the
concept's activations from those of random images; its normal is the concept activation vector (CAV). The
TCAV score of a class is the share of the class's images whose class logit rises along the CAV (the sign of the
directional derivative). One CAV is a chance: the score counts only if it differs from what random "concepts"
get. So the concept is tried against ``runs`` random sets, and random set 0 against the same ``runs`` sets,
and a two-sided t-test (Welch's) compares the two lists of scores; ``p < alpha`` is significant.

:func:`tcav` reads the blocks through the network's explicit ``forward_intermediates`` (no hooks), keeps every
set's activations on the device, and fits all the CAVs of a block at once from one Gram matrix
(:mod:`explorer.concepts.cav`). :func:`tcav_captum` runs ``captum.concept.TCAV`` with the same CAVs: the oracle
the tests hold :func:`tcav` to. Captum sets hooks on the blocks it reads: the model it is given must be a private
copy, never a shared one.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from explorer.concepts.cav import captum_classifier, fit, pair_seed, split

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
    accuracy: float = float("nan")  # the concept's CAVs on their held-out images: near 0.5, no concept was found
    separation_p: float = float("nan")  # do its CAVs separate it better than random sets' separate them? (one-sided)

    def to_json(self) -> dict[str, object]:
        return {
            "concept": self.concept,
            "block": self.block,
            "score": round(self.score, 4),
            "p_value": float(f"{self.p_value:.4g}"),
            "significant": self.significant,
            "cav_accuracy": None if np.isnan(self.accuracy) else round(self.accuracy, 4),
            "separation_p": None if np.isnan(self.separation_p) else float(f"{self.separation_p:.4g}"),
            "scores": [round(s, 4) for s in self.scores],
            "random_scores": [round(s, 4) for s in self.random_scores],
        }


class RandomSets(Sequence[Tensor]):
    """Random sets drawn from one pool of images: each set is its rows of the pool (``members``), so that
    :func:`tcav` runs the pool through the network once however many sets share its images (the command line's
    default pool is twice a set: ten runs would otherwise forward each image five times over)."""

    def __init__(self, pool: Tensor, members: Sequence[Tensor]) -> None:
        self.pool, self.members = pool, list(members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, number: int) -> Tensor:  # type: ignore[override]
        return self.pool[self.members[number]]


def random_sets(pool: Tensor, runs: int, size: int, seed: int) -> RandomSets:
    """``runs + 1`` sets of ``size`` images each, drawn without replacement within a set from ``pool``."""
    if len(pool) < 2 * size:
        raise ValueError(
            f"{len(pool)} random images make random sets of {size} that share most of their images; "
            f"give at least {2 * size} (or fewer images a set)"
        )
    generator = np.random.default_rng(seed)
    members = [torch.from_numpy(generator.choice(len(pool), size, replace=False)) for _ in range(runs + 1)]
    return RandomSets(pool, members)


Progress = Callable[[float, str], None]


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
    progress: Progress | None = None,
) -> list[ConceptScore]:
    """Each concept's TCAV score for ``class_index`` at each block, with its significance over ``len(randoms) - 1``
    runs. ``model`` has ``forward_intermediates(x) -> (logits, {block: output})``; ``images``: the class's
    examples; every tensor normalised (N, 3, H, W) on the model's device. The same seed gives the same scores."""
    runs = _check(images, concepts, randoms)
    report = progress or (lambda share, message: None)
    # set k has Captum's concept id k (random sets first); a pool's sets are sized by their rows, not copied
    sizes = [len(m) for m in randoms.members] if isinstance(randoms, RandomSets) else [len(s) for s in randoms]
    starts = np.cumsum([0, *sizes, *(len(s) for s in concepts.values())]).tolist()
    pairs = [(c, r) for c in [*range(len(randoms), len(sizes) + len(concepts)), 0] for r in range(1, runs + 1)]
    model.eval()
    activations = _activations(model, blocks, randoms, list(concepts.values()), batch_size, report)
    report(0.7, "the class's gradients")
    gradients: dict[str, list[Tensor]] = defaultdict(list)
    for chunk in images.split(batch_size):
        with torch.enable_grad():
            x = chunk.detach().requires_grad_(True)  # the weights need none: the graph hangs on the input
            logits, found = model.forward_intermediates(x)
            grads = torch.autograd.grad(logits[:, class_index].sum(), [found[b] for b in blocks])
        for block, grad in zip(blocks, grads, strict=True):
            gradients[block].append(grad.flatten(1).float())
    scores = []
    for number, block in enumerate(blocks):
        report(0.9 + 0.1 * number / len(blocks), f"CAVs at {block}")
        rows = torch.cat(activations.pop(block))
        gram, along = rows @ rows.T, torch.cat(gradients.pop(block)) @ rows.T
        del rows
        sign, accuracy = _pair_scores(gram.cpu().double(), along.cpu().double(), starts, pairs, seed)
        baseline = tuple(sign[(0, r)] for r in range(1, runs + 1))
        random_accuracy = [accuracy[(0, r)] for r in range(1, runs + 1)]
        for k, name in enumerate(concepts, start=len(randoms)):
            own = tuple(sign[(k, r)] for r in range(1, runs + 1))
            separates = [accuracy[(k, r)] for r in range(1, runs + 1)]
            scores.append(_score(name, block, own, baseline, alpha, (separates, random_accuracy)))
    report(1.0, "done")
    return scores


def _activations(
    model: nn.Module,
    blocks: Sequence[str],
    randoms: Sequence[Tensor],
    concepts: Sequence[Tensor],
    batch_size: int,
    report: Progress,
) -> dict[str, list[Tensor]]:
    """Every set's activations at each block, flattened, the random sets first, in order; :class:`RandomSets`'
    pool is run once and each set takes its rows of it."""
    pooled = isinstance(randoms, RandomSets)
    inputs = [randoms.pool] if pooled else list(randoms)  # type: ignore[attr-defined]
    inputs += concepts
    outputs: list[dict[str, Tensor]] = []
    with torch.no_grad():
        for number, data in enumerate(inputs):
            report(0.7 * number / len(inputs), f"activations of image set {number + 1} of {len(inputs)}")
            found = [model.forward_intermediates(chunk)[1] for chunk in data.split(batch_size)]
            outputs.append({block: torch.cat([f[block].flatten(1).float() for f in found]) for block in blocks})
    if pooled:
        pool = outputs.pop(0)
        outputs[:0] = [{block: pool[block][members] for block in blocks} for members in randoms.members]
    return {block: [output[block] for output in outputs] for block in blocks}


def _pair_scores(
    gram: Tensor, along: Tensor, starts: list[int], pairs: list[tuple[int, int]], seed: int
) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], float]]:
    """Each pair's TCAV score (the share of the class's gradients with a positive projection on its CAV) and its
    CAV's held-out accuracy; the CAVs of pairs of one size are fitted together."""
    by_size: dict[int, list[tuple[tuple[int, int], Tensor, Tensor, Tensor, Tensor]]] = defaultdict(list)
    for first, second in pairs:
        one, other = torch.arange(starts[first], starts[first + 1]), torch.arange(starts[second], starts[second + 1])
        rows, label = torch.cat([one, other]), torch.cat([torch.ones(len(one)), -torch.ones(len(other))])
        train, test = split(len(rows), pair_seed(seed, first, second))  # as Captum's rows: the concept's, then
        by_size[len(rows)].append(((first, second), rows[train], rows[test], label[train], label[test]))
    sign, accuracy = {}, {}
    for group in by_size.values():
        kernels = torch.stack([gram[train][:, train] for _, train, _, _, _ in group])
        scales = 1.0 / kernels.diagonal(dim1=1, dim2=2).mean(-1)
        a, b = fit(kernels * scales.view(-1, 1, 1), torch.stack([y for _, _, _, y, _ in group]))
        for i, (pair, train, test, _, held_label) in enumerate(group):
            sign[pair] = float(((along[:, train] @ a[i]) > 0).double().mean())
            held = (scales[i] * gram[test][:, train] @ a[i] + b[i]) > 0
            accuracy[pair] = float((held == (held_label > 0)).double().mean())
    return sign, accuracy


def tcav_captum(
    model: nn.Module,
    blocks: Sequence[str],
    class_index: int,
    images: Tensor,
    concepts: Mapping[str, Tensor],
    randoms: Sequence[Tensor],
    alpha: float = 0.05,
    batch_size: int = 32,
    seed: int = 0,
) -> list[ConceptScore]:
    """:func:`tcav` computed by ``captum.concept.TCAV`` with the same CAVs (:class:`explorer.concepts.cav.LinearCAV`):
    the oracle for :func:`tcav`. Slow (Captum keeps activations on disk and CAVs as Python lists)."""
    from captum.concept import TCAV, Concept

    runs = _check(images, concepts, randoms)

    def concept(number: int, name: str, data: Tensor) -> Concept:
        return Concept(number, name, torch.utils.data.DataLoader(data, batch_size=batch_size))

    random_concepts = [concept(i, f"random {i}", data) for i, data in enumerate(randoms)]
    mine = [concept(len(randoms) + i, name, data) for i, (name, data) in enumerate(concepts.items())]
    experiments = [[c, random_concepts[r]] for c in [*mine, random_concepts[0]] for r in range(1, runs + 1)]
    model.eval()
    with tempfile.TemporaryDirectory(prefix="explorer-tcav-") as where:  # Captum keeps CAVs and activations here
        classifier = captum_classifier(seed)
        interpreter = TCAV(model, list(blocks), model_id="explorer", classifier=classifier, save_path=where + "/")
        found = interpreter.interpret(images, experiments, target=class_index)

    def run_scores(c: Concept, block: str) -> tuple[float, ...]:
        keys = [f"{c.id}-{random_concepts[r].id}" for r in range(1, runs + 1)]
        return tuple(float(found[k][block]["sign_count"][0]) for k in keys)

    scores = []
    for block in blocks:
        baseline = run_scores(random_concepts[0], block)
        scores += [_score(c.name, block, run_scores(c, block), baseline, alpha) for c in mine]
    return scores


def _check(images: Tensor, concepts: Mapping[str, Tensor], randoms: Sequence[Tensor]) -> int:
    runs = len(randoms) - 1
    if runs < MIN_RUNS:
        raise ValueError(f"TCAV's significance needs at least {MIN_RUNS} random sets, not {runs}")
    for name, found in {"the class's images": images, **concepts}.items():
        if len(found) < MIN_IMAGES:
            raise ValueError(f"{name}: {len(found)} images; a concept or class needs at least {MIN_IMAGES}")
    return runs


def _score(
    name: str,
    block: str,
    own: tuple[float, ...],
    baseline: tuple[float, ...],
    alpha: float,
    accuracies: tuple[list[float], list[float]] | None = None,
) -> ConceptScore:
    """The t-test of the scores against the random sets'. Given the CAVs' held-out accuracies (the concept's and the
    random sets' against each other), the concept must also be one at this block: its CAVs separate it better
    than random sets separate from random sets (one-sided). Without that a CAV is a random direction, and with a
    fixed concept set a random direction's score sits consistently on one side: a random "concept" would pass
    the score test alone about as often as not (measured on the tests' toy network)."""
    from scipy.stats import ttest_ind

    def welch(one: Sequence[float], other: Sequence[float], side: str = "two-sided") -> float:
        p = float(ttest_ind(one, other, equal_var=False, alternative=side).pvalue)
        return 1.0 if np.isnan(p) else p  # identical constant lists: no difference at all

    p_value = welch(own, baseline)
    if accuracies is None:
        return ConceptScore(name, block, float(np.mean(own)), own, baseline, p_value, p_value < alpha)
    separation = welch(accuracies[0], accuracies[1], "greater")
    significant = p_value < alpha and separation < alpha
    return ConceptScore(
        name, block, float(np.mean(own)), own, baseline, p_value, significant, float(np.mean(accuracies[0])), separation
    )
