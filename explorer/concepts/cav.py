"""Concept activation vectors: an L2-regularised logistic regression between two sets of activations, solved
in the span of the training activations.

A block's activations have 100,000 to 400,000 numbers an image and a CAV is trained on a few dozen images: the
optimum of an L2-regularised linear model lies in the span of its training rows (the representer theorem),
so ``w = sum_i a_i x_i`` and the whole fit needs only the Gram matrix ``K = X X^T`` (n x n). Newton's method on
``(a, b)`` converges in a few steps, is deterministic, and runs batched over every (concept, random set) pair
at once: the fit costs nothing next to the forwards. The same fit serves Captum's TCAV through
:class:`LinearCAV` (its ``Classifier`` interface), which is how the tests check our TCAV against Captum's.

Features are scaled so the training rows' mean squared norm is 1 (the regularisation then means the same at
every block); a CAV points from the random set towards the concept. A third of each pair is held out for the
CAV's accuracy, as Captum's default classifier does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

REGULARISATION = 0.01  # as Captum's default classifier (sklearn's SGDClassifier alpha)
TEST_SHARE = 0.33
NEWTON_STEPS = 30
_STEP_SIZES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.0)  # 0: keep the point when no step lowers the loss


def split(count: int, seed: int) -> tuple[Tensor, Tensor]:
    """Training and held-out positions of ``count`` rows, drawn by the seed (held out: the first third)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    held = int(TEST_SHARE * count)
    return order[held:], order[:held]


def pair_seed(seed: int, first: int, second: int) -> int:
    """One split seed per pair of sets (the same in our TCAV and in Captum's, whichever order pairs are fitted)."""
    return (seed * 1_000_003 + first * 1_009 + second) % (2**63)


def _loss(features: Tensor, y: Tensor, beta: Tensor, b: Tensor, lam: float) -> Tensor:
    f = (features @ beta.unsqueeze(-1)).squeeze(-1) + b.unsqueeze(-1)
    return torch.nn.functional.softplus(-y * f).mean(-1) + 0.5 * lam * (beta * beta).sum(-1)


def fit(gram: Tensor, y: Tensor, lam: float = REGULARISATION) -> tuple[Tensor, Tensor]:
    """Dual coefficients ``a`` (P, n) and intercepts ``b`` (P,) of P logistic regressions, each given its training
    rows' Gram matrix (P, n, n, already scaled) and labels ``y`` (P, n) of +1 and -1; float64, on the CPU.

    The rows are replaced by coordinates in the Gram matrix's eigenbasis (``K = F F^T``, ``F = U sqrt(L)``), with
    the directions a float32 Gram matrix cannot tell from zero dropped: there the problem is an ordinary
    strictly convex one in at most n dimensions, and ``a = U L^(-1/2) beta``."""
    gram, y = gram.double().cpu(), y.double().cpu()  # a few 67 x 67 systems: the CPU in float64, on any machine
    values, vectors = torch.linalg.eigh((gram + gram.transpose(1, 2)) / 2)
    kept = values > 1e-6 * values.amax(-1, keepdim=True)  # float32 products: below this is rounding, not data
    root = torch.where(kept, values.clamp(min=0).sqrt(), 0.0)
    features = vectors * root.unsqueeze(1)
    pairs, n = y.shape
    beta = torch.zeros(pairs, n, dtype=gram.dtype)
    b = torch.zeros(pairs, dtype=gram.dtype)
    augmented = torch.cat([features, torch.ones(pairs, n, 1, dtype=gram.dtype)], 2)  # the intercept's column
    ridge = torch.diag_embed(torch.cat([torch.full((pairs, n), lam, dtype=gram.dtype), torch.zeros(pairs, 1)], 1))
    steps = torch.tensor(_STEP_SIZES, dtype=gram.dtype)
    for _ in range(NEWTON_STEPS):
        f = (features @ beta.unsqueeze(-1)).squeeze(-1) + b.unsqueeze(-1)
        p = torch.sigmoid(f)
        r = (-y * torch.sigmoid(-y * f)) / n  # d loss / d f
        grad = (augmented.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1) + torch.cat([lam * beta, b[:, None] * 0], 1)
        hessian = augmented.transpose(1, 2) @ (augmented * (p * (1 - p) / n).unsqueeze(-1)) + ridge
        hessian = hessian + 1e-12 * torch.eye(n + 1, dtype=gram.dtype)  # all of one label: the intercept runs off
        delta = torch.linalg.solve(hessian, grad)
        losses = torch.stack(
            [_loss(features, y, beta - t * delta[:, :n], b - t * delta[:, n], lam) for t in steps.tolist()], -1
        )
        best = steps[losses.argmin(-1)].unsqueeze(-1)  # a backtracking line search, all pairs at once
        beta, b = beta - best * delta[:, :n], b - best.squeeze(-1) * delta[:, n]
    inverse_root = torch.where(kept, 1 / root.clamp(min=1e-300), 0.0)
    return ((vectors * inverse_root.unsqueeze(1)) @ beta.unsqueeze(-1)).squeeze(-1), b


class LinearCAV:
    """Captum's ``Classifier`` interface over :func:`fit`: TCAV in ``captum.concept`` with our CAVs.

    Captum trains one classifier object per layer and pair, in turn; the pair's split is drawn from ``seed``
    and the two concept ids, as :func:`explorer.concepts.tcav.tcav` draws it."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._weights: Tensor | None = None
        self._classes: list[int] = []

    def train_and_eval(self, dataloader: Iterable, **kwargs: object) -> dict[str, Tensor]:
        inputs, labels = zip(*dataloader, strict=True)
        x, label = torch.cat(inputs).float(), torch.cat(labels)
        first, second = int(label[0]), int(label[-1])  # Captum lists the pair's sets in order
        train, test = split(len(x), pair_seed(self.seed, first, second))
        y = torch.where(label == first, 1.0, -1.0).to(x.device)
        rows = x[train]
        gram = rows @ rows.T
        scale = 1.0 / gram.diagonal().mean()
        a, b = fit((gram * scale).unsqueeze(0), y[train].unsqueeze(0))
        a, b = a[0].to(x.device, x.dtype), b[0].to(x.device, x.dtype)
        direction = scale * (a @ rows)  # the CAV in the block's own units
        predicted = (scale * (x[test] @ rows.T) @ a + b) > 0
        self._weights = torch.stack([direction, -direction]).cpu()
        self._classes = [first, second]
        return {"accs": (predicted == (y[test] > 0)).float().mean().cpu()}

    def weights(self) -> Tensor:
        assert self._weights is not None, "train_and_eval first"
        return self._weights

    def classes(self) -> list[int]:
        return self._classes


def captum_classifier(seed: int = 0) -> LinearCAV:  # the class is made on first use: captum imports slowly
    """:class:`LinearCAV` as a subclass of ``captum.concept.Classifier`` (which Captum's TCAV requires)."""
    from captum.concept import Classifier

    return type("CaptumLinearCAV", (LinearCAV, Classifier), {})(seed)
