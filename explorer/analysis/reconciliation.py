"""Which convention on which variant reproduces each published figure, and why the ones nothing reproduces are off."""

from __future__ import annotations

from dataclasses import dataclass, field

from explorer.analysis.counting import Convention, LayerCounts
from explorer.analysis.published import PUBLISHED_FIGURES, PublishedFigure


@dataclass(frozen=True)
class Candidate:
    variant: str
    convention: str
    value: int


@dataclass(frozen=True)
class Reconciliation:
    figure: PublishedFigure
    reproduced_by: tuple[Candidate, ...]
    nearest: tuple[Candidate, ...]
    explanation: str
    candidates: tuple[Candidate, ...] = field(repr=False, default=())


def _candidates(counts: LayerCounts) -> list[Candidate]:
    found = [Candidate(counts.variant, c.name, c.total) for c in counts.conventions]
    found.append(Candidate(counts.variant, "Parameters (PyTorch, timm)", counts.whole.params))
    found.append(Candidate(counts.variant, "Parameters (as Keras counts them)", counts.keras_params))
    return found


def reconcile(all_counts: list[LayerCounts]) -> list[Reconciliation]:
    """For each published figure: which definition on which variant reproduces it, or the nearest."""
    released = next(c for c in all_counts if c.variant == "released" and c.is_published_network)
    rows = []
    for figure in PUBLISHED_FIGURES:
        candidates = [cand for counts in all_counts for cand in _candidates(counts)]
        on_released = _candidates(released)
        hits = tuple(c for c in on_released if figure.matches(c.value))
        if hits:
            names = ", ".join(c.convention for c in hits)
            text = f"Reproduced on the released network by: {names}."
            rows.append(Reconciliation(figure, hits, (), text, tuple(candidates)))
            continue
        scale = "Parameters" in _measure_name(figure)
        pool = [c for c in candidates if ("Parameters" in c.convention) == scale]
        nearest = tuple(sorted(pool, key=lambda c: abs(c.value - figure.value))[:3])
        rows.append(Reconciliation(figure, (), nearest, _explain_miss(figure, released, pool), tuple(candidates)))
    return rows


def _measure_name(figure: PublishedFigure) -> str:
    return {"params": "Parameters", "keras_params": "Parameters"}.get(figure.measure, "layers")


def _explain_miss(figure: PublishedFigure, released: LayerCounts, pool: list[Candidate]) -> str:
    exact_elsewhere = [c for c in pool if figure.matches(c.value)]
    if exact_elsewhere:
        where = ", ".join(f"{c.convention} on {c.variant}" for c in exact_elsewhere)
        opening = f"Not reproduced on the released network it describes; only {where} gives {figure.value}."
    else:
        variants = ", ".join(dict.fromkeys(c.variant for c in pool))
        opening = f"No definition here gives {figure.value} on any variant ({variants})."
    own = [c for c in released.conventions if c.key == figure.measure] or list(released.conventions)
    closest = min(own, key=lambda c: abs(c.total - figure.value))
    diff = closest.total - figure.value
    text = (
        f"{opening} The definition it is usually given with, {closest.name}, counts {closest.total} on the "
        f"released network, {abs(diff)} {'more' if diff > 0 else 'fewer'}."
    )
    per_block = _per_block(released, closest)
    if per_block and diff % per_block == 0:
        blocks = sum(released.repeats)
        text += (
            f" Each residual block adds {per_block} to that count, so {figure.value} would need "
            f"{blocks - diff // per_block} residual blocks instead of {blocks}, a network nobody released."
        )
    return text


def _per_block(counts: LayerCounts, convention: Convention) -> int | None:
    """What one residual block adds to a convention, when every block type adds the same."""
    per = {
        convention.per_component[key] / n
        for key, n in zip(("block_a", "block_b", "block_c"), counts.repeats, strict=True)
    }
    if len(per) == 1:
        value = per.pop()
        return int(value) if value.is_integer() and value > 0 else None
    return None
