"""The short answer to "how many layers does it have?", for the first screen: the figures people quote.

Each quoted figure is one counting convention's total on the chosen network (computed by
:mod:`explorer.analysis.counting`, never typed in), with what it counts in a few words and the published figure
it reproduces on the released network. The figures nobody can reproduce (164) come with the
reconciliation's explanation of why not.
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.analysis.counting import LayerCounts
from explorer.analysis.reconciliation import Reconciliation

#: The conventions behind the numbers students meet, in the order the answer gives them: the word after
#: the number, and what it counts in a line (the full definitions are on the Layer counts page).
QUOTED: dict[str, tuple[str, str]] = {
    "longest_conv_fc_path": ("deep", "convolutions and FC layers along the longest path from input to output"),
    "conv_layers": ("convolutions", "every convolution, the linear 1x1 ones included"),
    "weighted_layers": ("layers with weights", "convolutions, batch norms and the FC layer, as Keras' table counts"),
    "keras_layers": ("Keras layers", "len(model.layers) of the Keras model: activations, pools, concats too"),
}


@dataclass(frozen=True)
class QuotedFigure:
    convention: str  # the convention's key: the Layer counts page's ?convention=
    name: str
    value: int
    word: str  # what follows the number: "deep", "convolutions"
    counts: str  # what it counts, in a line
    reproduces: str  # the published figure this total is, or ""


@dataclass(frozen=True)
class Unreproducible:
    value: int
    says: str
    source: str
    why: str


def quoted_figures(counts: LayerCounts) -> list[QuotedFigure]:
    """The quoted figures computed on ``counts``' network, in :data:`QUOTED`'s order."""
    return [
        QuotedFigure(key, (c := counts.convention(key)).name, c.total, word, what, c.reproduces)
        for key, (word, what) in QUOTED.items()
    ]


def unreproducible(reconciliations: list[Reconciliation]) -> list[Unreproducible]:
    """The published layer counts that no convention gives on the released network, and why."""
    return [
        Unreproducible(r.figure.value, r.figure.says, r.figure.source, r.explanation)
        for r in reconciliations
        if not r.reproduced_by and r.figure.measure not in ("params", "keras_params")
    ]


def headline(counts: LayerCounts) -> str:
    """The figures in one line: "176 deep · 244 convolutions · 449 layers with weights · 782 Keras layers"."""
    return " · ".join(f"{f.value} {f.word}" for f in quoted_figures(counts))
