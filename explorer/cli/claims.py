"""``irv2-explorer claims``: the published figures and the source texts' claims, checked."""

from __future__ import annotations

import argparse

from explorer.nets import VARIANTS, make_config


def _claims(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from explorer.analysis.claims import check_claims
    from explorer.analysis.counting import count_layers
    from explorer.analysis.reconciliation import reconcile

    counts = {variant: count_layers(make_config(variant)) for variant in VARIANTS}
    figures = reconcile(list(counts.values()))
    claims = check_claims(counts)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "published_figures": [
                        {
                            "figure": f.figure.says,
                            "source": f.figure.source,
                            "reproduced_by": [dataclasses.asdict(c) for c in f.reproduced_by],
                            "nearest": [dataclasses.asdict(c) for c in f.nearest],
                            "explanation": f.explanation,
                        }
                        for f in figures
                    ],
                    "claims": [dataclasses.asdict(c) for c in claims],
                },
                indent=2,
            )
        )
        return 0
    print("Published figures")
    for f in figures:
        print(f"- {f.figure.says} ({f.figure.source}): {f.explanation}")
    print("\nClaims from the source texts")
    for claim in claims:
        print(f"- [{claim.source}] {claim.claim}")
        for v in claim.verdicts:
            print(f"    {v.variant:<9} {v.verdict:<12} {v.evidence}")
    return 0


def add_to(commands: argparse._SubParsersAction) -> None:
    claims = commands.add_parser("claims", help="published figures and the source texts' claims, checked")
    claims.add_argument("--format", choices=("table", "json"), default="table")
    claims.set_defaults(run=_claims)
