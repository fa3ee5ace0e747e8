"""The networks side by side: each figure as a ratio to a reference network, and the paper's own comparison.

The paper's argument is a comparison at about equal cost: Inception-v4 (no residual connections) against
Inception-ResNet-v2. :func:`comparison_rows` gives every figure of every network with its ratio to the
reference (the released network), so that a page can mark the cells that are far from it rather than every
row that differs somewhere; :func:`paper_comparison` states the comparison in sentences, from the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from explorer.analysis.counting import LayerCounts
from explorer.analysis.summary import shape_text
from explorer.nets.tables import VARIANTS

#: Cells within this fraction of the reference count as "about the same" (the paper's "similar cost").
CLOSE = 0.1

SHAPES = (
    ("stem", "stem output"),
    ("mixed_5b", "Mixed_5b output"),
    ("block_a", "A blocks output"),
    ("block_b", "B blocks output"),
    ("block_c", "C blocks output"),
    ("final_conv", "final 1x1 conv output"),
)


@dataclass(frozen=True)
class Cell:
    text: str
    ratio: float | None  # to the reference network's figure; None for shapes and the reference itself
    differs: bool  # from the reference's cell

    @property
    def distance(self) -> float:
        """How far from the reference, 0 (the same) to 1 (half or double, and beyond): for shading."""
        if self.ratio is None:
            return 0.3 if self.differs else 0.0
        if abs(self.ratio - 1) < CLOSE or self.ratio <= 0:
            return 0.0
        return min(1.0, abs(math.log2(self.ratio)))


def _numbers(counts: Mapping[str, LayerCounts]) -> dict[str, dict[str, tuple[float, str]]]:
    rows: dict[str, dict[str, tuple[float, str]]] = {
        "parameters": {v: (c.whole.params, f"{c.whole.params / 1e6:.1f} M") for v, c in counts.items()},
        "MACs per image": {v: (c.whole.macs, f"{c.whole.macs / 1e9:.2f} G") for v, c in counts.items()},
        "blocks A + B + C": {v: (sum(c.repeats), " + ".join(map(str, c.repeats))) for v, c in counts.items()},
    }
    reference = next(iter(counts.values()))
    for convention in reference.conventions:
        rows[convention.name] = {
            v: (c.convention(convention.key).total, str(c.convention(convention.key).total)) for v, c in counts.items()
        }
    return rows


def comparison_rows(counts: Mapping[str, LayerCounts], reference: str = "released") -> dict[str, dict[str, Cell]]:
    """Every figure of every network (in the order of ``counts``), each with its ratio to ``reference``'s."""
    rows: dict[str, dict[str, Cell]] = {}
    for label, values in _numbers(counts).items():
        base = values[reference][0]
        rows[label] = {
            v: Cell(
                text if v == reference else f"{text} ({value / base:.2f}x)",
                None if v == reference else value / base,
                value != base,
            )
            for v, (value, text) in values.items()
        }
    for key, label in SHAPES:
        shapes = {
            v: next((shape_text(comp.output_shape) for comp in c.components if comp.key == key), "none")
            for v, c in counts.items()
        }
        rows[label] = {v: Cell(text, None, text != shapes[reference]) for v, text in shapes.items()}
    return rows


def paper_comparison(counts: Mapping[str, LayerCounts]) -> list[str]:
    """The paper's comparison in sentences: cost, parameters and depth of each Inception-ResNet against
    Inception-v4 (the networks in ``counts`` must include it)."""
    v4 = counts["inception-v4"]
    depth = "longest_conv_fc_path"
    lines = [
        f"**Inception-v4**: {v4.whole.params / 1e6:.1f} M parameters, {v4.whole.macs / 1e9:.2f} GMACs per image, "
        f"{v4.convention(depth).total} convolutional and FC layers on its longest path, no residual connections."
    ]
    for variant, c in counts.items():
        if variant == "inception-v4" or not VARIANTS[variant].residual:
            continue
        macs, params = c.whole.macs / v4.whole.macs, c.whole.params / v4.whole.params
        verdict = "about the same cost as" if abs(macs - 1) <= 0.25 else ("cheaper than" if macs < 1 else "dearer than")
        lines.append(
            f"**{VARIANTS[variant].network} ({variant})**, {' / '.join(map(str, c.repeats))} blocks: "
            f"{c.whole.params / 1e6:.1f} M parameters ({params:.2f}x), {c.whole.macs / 1e9:.2f} GMACs ({macs:.2f}x), "
            f"{c.convention(depth).total} layers on its longest path: {verdict} Inception-v4."
        )
    return lines
