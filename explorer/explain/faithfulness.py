"""Which map is faithful for this image? Deletion, insertion, ROAD and infidelity, batched.

- **Deletion** (Petsiuk et al., RISE, 2018): the map, at the network's input size, ranks the pixels, highest
  first (ties in reading order). At step s of S the first round(s / S x pixels) of them take the baseline's
  value; the score is the softmax probability of the explained class; S + 1 points, their area by the trapezoid
  rule over [0, 1]. A faithful map makes the probability fall fast: lower is better.
- **Insertion**: the other way round, from the baseline, the same pixels put back first: higher is better.
- **ROAD** (Rong et al., 2022): the first p % of the pixels removed and filled in by noisy linear imputation
  (:mod:`explorer.explain.road`), so the removed region's shape does not leak; the probability at each p:
  lower is better.
- **Infidelity** (Yeh et al., 2019, Captum's ``captum.metrics.infidelity``): how far the map's dot product with
  random perturbations is from the change in the probability they cause, the map optimally scaled first
  (``normalize=True``), so maps on different scales compare: lower is better.

Baselines: ``black``, ``mean`` (the image's mean colour) and ``blur`` (a Gaussian of ``sigma`` pixels, the
default). All the images of a curve go through the network in a few batched forwards; infidelity's perturbed
images are the same for every map (one seed), so they go through it once for all the maps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

#: A batch of normalised images (N, 3, H, W) -> the head's softmax (N, classes), float32 on the CPU.
Scorer = Callable[[Tensor], Tensor]

BASELINES = ("black", "mean", "blur")
METRICS = ("deletion", "insertion", "road", "infidelity")
#: Each metric and whether a higher value is better.
HIGHER_IS_BETTER = {"deletion": False, "insertion": True, "road": False, "infidelity": False}


@dataclass(frozen=True)
class MetricSettings:
    steps: int = 50  # the deletion and insertion curves' steps S (S + 1 points)
    baseline: str = "blur"
    sigma: float = 10.0  # the blur baseline's Gaussian, in pixels of the network's input
    road_percentages: tuple[int, ...] = (10, 30, 50, 70, 90)
    road_noise: float = 0.02  # in the normalised input's units (its range is about 2 wide)
    infidelity_samples: int = 32
    infidelity_noise: float = 0.1  # the perturbations' standard deviation, normalised units
    seed: int = 0

    def check(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; baselines are: {', '.join(BASELINES)}")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"--metric-steps takes a whole number from 1 to 1000, not {self.steps}")
        if not all(0 < p < 100 for p in self.road_percentages):
            raise ValueError("ROAD's percentages lie strictly between 0 and 100")

    def to_json(self) -> dict[str, object]:
        described: dict[str, object] = {"steps": self.steps, "baseline": self.baseline}
        if self.baseline == "blur":
            described["sigma"] = self.sigma
        return described


#: The defaults, one shared (immutable) value.
METRIC_DEFAULTS = MetricSettings()


@dataclass(frozen=True)
class Faithfulness:
    """One map's scores on one image for one class; ``curves`` holds each curve's S + 1 probabilities."""

    method: str
    scores: Mapping[str, float | dict[str, float]]  # deletion, insertion, infidelity: floats; road: {"10": p, ...}
    curves: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        """One number per metric: ROAD's mean over its percentages."""
        found = self.scores[metric]
        return float(np.mean(list(found.values()))) if isinstance(found, dict) else float(found)


def check_metrics(metrics: Sequence[str]) -> list[str]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; metrics are: {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def baseline_image(x: Tensor, settings: MetricSettings, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """The baseline of a normalised image (1, 3, H, W), normalised too (the normalisation is per-channel affine, so
    blurring or averaging either side of it gives the same image)."""
    if settings.baseline == "black":
        black = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
        return torch.tensor(black, dtype=x.dtype, device=x.device).view(1, 3, 1, 1).expand_as(x).clone()
    if settings.baseline == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).clone()
    from torchvision.transforms.functional import gaussian_blur

    side = 2 * int(np.ceil(3 * settings.sigma)) + 1
    side = min(side, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)  # reflect padding needs the kernel inside the image
    return gaussian_blur(x, [side, side], [settings.sigma, settings.sigma])


def pixel_order(heatmap: np.ndarray) -> np.ndarray:
    """Flat pixel indices (row-major) from the highest value of the map to the lowest; ties in reading order."""
    return np.argsort(-np.asarray(heatmap, dtype=np.float64).ravel(), kind="stable")


def counts(steps: int, pixels: int) -> list[int]:
    """How many pixels have changed at each step: round(s / S x pixels), Python's rounding (half to even)."""
    return [round(s / steps * pixels) for s in range(steps + 1)]


def area(curve: Sequence[float]) -> float:
    """The trapezoid rule over [0, 1] for equally spaced points."""
    values = np.asarray(curve, dtype=np.float64)
    return float(((values[1:] + values[:-1]) / 2).sum() / (len(values) - 1))


def pixel_rank(heatmap: np.ndarray, device: torch.device) -> Tensor:
    """Each pixel's place in :func:`pixel_order` (0: the highest), (H, W) int64 on the device: sorted there, once
    a map (a stable sort of the negated values in float64, as NumPy's)."""
    values = torch.as_tensor(np.asarray(heatmap, dtype=np.float64), device=device)
    order = torch.argsort(-values.flatten(), stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=device)
    return rank.view(values.shape)


def curve_batch(x: Tensor, baseline: Tensor, heatmap: np.ndarray | Tensor, steps: int, deletion: bool) -> Tensor:
    """The S + 1 images of a deletion (or insertion) curve, built on ``x``'s device; ``heatmap`` is the map or its
    :func:`pixel_rank` on that device."""
    height, width = x.shape[-2:]
    if tuple(heatmap.shape) != (height, width):
        raise ValueError(f"the map is {tuple(heatmap.shape)}, the input {tuple(x.shape[-2:])}: they must agree")
    rank = heatmap if isinstance(heatmap, Tensor) else pixel_rank(heatmap, x.device)
    changed = torch.tensor(counts(steps, height * width), device=x.device)
    mask = rank.view(1, 1, height, width) < changed.view(-1, 1, 1, 1)
    start, end = (x, baseline) if deletion else (baseline, x)
    return torch.where(mask, end, start)


def score_maps(
    score: Scorer,
    x: Tensor,
    heatmaps: Mapping[str, np.ndarray],
    class_index: int,
    metrics: Sequence[str],
    settings: MetricSettings,
    mean: Sequence[float],
    std: Sequence[float],
    progress: Callable[[float, str], None] | None = None,
) -> list[Faithfulness]:
    """Every metric asked for, for each method's map of the image ``x`` (normalised, (1, 3, H, W)) and class."""
    settings.check()
    metrics = check_metrics(metrics)
    baseline = baseline_image(x, settings, mean, std)
    shared = _Remembered(score)  # infidelity's forwards: the same perturbed images for every map
    found = []
    for number, (method, heatmap) in enumerate(heatmaps.items()):
        if progress is not None:
            progress(number / len(heatmaps), f"{method}: {', '.join(metrics)}")
        scores: dict[str, float | dict[str, float]] = {}
        curves: dict[str, tuple[float, ...]] = {}
        wanted = [m for m in ("deletion", "insertion") if m in metrics]
        if wanted:  # both curves in one batch: S + 1 images each
            rank = pixel_rank(heatmap, x.device)
            batch = torch.cat([curve_batch(x, baseline, rank, settings.steps, m == "deletion") for m in wanted])
            probability = score(batch)[:, class_index].double().numpy()
            for i, metric in enumerate(wanted):
                curve = probability[i * (settings.steps + 1) : (i + 1) * (settings.steps + 1)]
                curves[metric] = tuple(float(v) for v in curve)
                scores[metric] = area(curve)
        if "road" in metrics:
            scores["road"] = road(score, x, heatmap, class_index, settings)
        if "infidelity" in metrics:
            scores["infidelity"] = infidelity(shared, x, heatmap, class_index, settings)
        found.append(Faithfulness(method, scores, curves))
    if progress is not None:
        progress(1.0, "done")
    return found


class _Remembered:
    """A scorer that scores a batch it has scored before from memory: each map's infidelity asks for the same
    perturbed images, which cost a forward each (32 of the released network: 16 s on a CPU core). A batch is
    known by sums computed where it lies (hashing its bytes would cost a GPU more than its forward)."""

    def __init__(self, score: Scorer) -> None:
        self.score = score
        self.seen: dict[tuple[object, ...], Tensor] = {}

    def __call__(self, batch: Tensor) -> Tensor:
        values = batch.detach().double().flatten()
        sums = torch.stack([values.sum(), values.square().sum(), values[::97].sum(), values[1::89].sum()])
        key = (tuple(batch.shape), str(batch.dtype), *sums.tolist())
        if key not in self.seen:
            self.seen[key] = self.score(batch)
        return self.seen[key]


def road(score: Scorer, x: Tensor, heatmap: np.ndarray, class_index: int, settings: MetricSettings) -> dict[str, float]:
    """The probability with the map's first p % of the pixels removed and imputed, for each p (one batch)."""
    from explorer.explain.road import impute

    image = x[0].detach().float().cpu().numpy()
    order = pixel_order(heatmap)
    rng = np.random.default_rng(settings.seed)
    imputed = []
    for percent in settings.road_percentages:
        removed = np.zeros(image.shape[1] * image.shape[2], dtype=bool)
        removed[order[: round(percent / 100 * removed.size)]] = True
        imputed.append(impute(image, removed.reshape(image.shape[1:]), settings.road_noise, rng))
    probability = score(torch.from_numpy(np.stack(imputed)).to(x.device))[:, class_index]
    return {str(p): float(v) for p, v in zip(settings.road_percentages, probability, strict=True)}


def infidelity(score: Scorer, x: Tensor, heatmap: np.ndarray, class_index: int, settings: MetricSettings) -> float:
    """Captum's infidelity of the map (the same map on every colour channel), Gaussian perturbations, seeded."""
    from captum.metrics import infidelity as captum_infidelity

    generator = torch.Generator(device=x.device).manual_seed(settings.seed)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        noise = settings.infidelity_noise * torch.randn(inputs.shape, generator=generator, device=inputs.device)
        return noise, inputs - noise

    attributions = torch.from_numpy(np.asarray(heatmap, dtype=np.float32)).to(x.device).expand_as(x[0])[None]
    value = captum_infidelity(
        lambda inputs: score(inputs).to(inputs.device),
        perturb,
        x.detach().float(),
        attributions.contiguous(),
        target=class_index,
        n_perturb_samples=settings.infidelity_samples,
        max_examples_per_batch=settings.infidelity_samples,
        normalize=True,
    )
    return float(value[0])


def ranking(found: Sequence[Faithfulness], metrics: Sequence[str]) -> list[dict[str, object]]:
    """The methods ranked on this image: each metric's rank (1 the most faithful) and their mean, best first."""
    rows = []
    for item in found:
        ranks = {}
        for metric in metrics:
            sign = -1 if HIGHER_IS_BETTER[metric] else 1
            values = sorted(sign * other.value(metric) for other in found)
            ranks[metric] = 1 + values.index(sign * item.value(metric))
        rows.append({"method": item.method, "ranks": ranks, "mean rank": float(np.mean(list(ranks.values())))})
    return sorted(rows, key=lambda row: (row["mean rank"], row["method"]))
