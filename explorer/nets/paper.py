"""Where the paper contradicts itself: the widths of Figures 17-19 that do not add up, and what was built instead."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.nets.networks import InceptionResNet
from explorer.nets.tables import PAPER_V2


@dataclass(frozen=True)
class PaperContradiction:
    """One place where the paper's numbers do not add up, and what was built instead."""

    variant: str
    where: str
    paper_says: int
    built: int
    why: str


def paper_contradictions() -> list[PaperContradiction]:
    """The paper-v2 width contradictions, with the widths taken from the built network."""
    model = InceptionResNet(PAPER_V2, device="meta")
    a_width = model.repeat[0].out_channels
    b_width = model.repeat_1[0].out_channels
    c_width = model.repeat_2[0].out_channels
    red_a = PAPER_V2.reduction_a
    red_b = PAPER_V2.reduction_b
    red_b_added = red_b.branch0[-1] + red_b.branch1[-1] + red_b.branch2[-1]
    return [
        PaperContradiction(
            "paper-v2",
            "Inception-ResNet-B, linear 1x1 (Figure 17)",
            paper_says=1154,
            built=b_width,
            why=f"Reduction-A (Table 1: n={red_a.n}, m={red_a.m}) on the {a_width}-channel A blocks gives "
            f"{a_width} + {red_a.n} + {red_a.m} = {b_width} channels, and the residual addition needs the "
            f"linear 1x1 to give back exactly its input's width.",
        ),
        PaperContradiction(
            "paper-v2",
            "Reduction-B, output (Figure 18)",
            paper_says=1154 + red_b_added,
            built=c_width,
            why=f"Reduction-B adds {red_b.branch0[-1]} + {red_b.branch1[-1]} + {red_b.branch2[-1]} = "
            f"{red_b_added} channels to its input: {b_width} + {red_b_added} = {c_width} with the width "
            f"built above (the paper's 1154 would give {1154 + red_b_added}).",
        ),
        PaperContradiction(
            "paper-v2",
            "Inception-ResNet-C, linear 1x1 (Figure 19)",
            paper_says=2048,
            built=c_width,
            why=f"The C blocks' input is Reduction-B's {c_width} channels, and the residual addition needs "
            f"the linear 1x1 to match it; 2048 matches neither reading.",
        ),
    ]
