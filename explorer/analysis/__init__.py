"""The analysis of a network: its layers traced and counted under every convention, the published figures each
convention reproduces, the claims people make checked, the summary table and the comparison with the paper."""

from explorer import lazy_exports

__all__ = [
    "KINDS",
    "PUBLISHED_FIGURES",
    "RULES",
    "Cell",
    "Claim",
    "ComponentCounts",
    "ComponentSummary",
    "Convention",
    "LayerCounts",
    "LayerRow",
    "ModelSummary",
    "PublishedFigure",
    "QuotedFigure",
    "Unreproducible",
    "Verdict",
    "check_claims",
    "comparison_rows",
    "count_layers",
    "counts_table_rows",
    "format_counts",
    "format_summary",
    "headline",
    "paper_comparison",
    "quoted_figures",
    "reconcile",
    "summarize",
    "to_csv",
    "trace_operations",
    "unreproducible",
]

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "answer": (
            "QuotedFigure",
            "Unreproducible",
            "headline",
            "quoted_figures",
            "unreproducible",
        ),
        "claims": (
            "Claim",
            "Verdict",
            "check_claims",
        ),
        "comparison": (
            "Cell",
            "comparison_rows",
            "paper_comparison",
        ),
        "conventions": ("RULES",),
        "counting": (
            "ComponentCounts",
            "Convention",
            "LayerCounts",
            "count_layers",
        ),
        "published": (
            "PUBLISHED_FIGURES",
            "PublishedFigure",
        ),
        "reconciliation": ("reconcile",),
        "report": (
            "counts_table_rows",
            "format_counts",
            "to_csv",
        ),
        "summary": (
            "ComponentSummary",
            "LayerRow",
            "ModelSummary",
            "format_summary",
            "summarize",
        ),
        "tracing": (
            "KINDS",
            "trace_operations",
        ),
    },
)
