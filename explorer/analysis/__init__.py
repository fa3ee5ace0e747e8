"""The analysis of a network: its layers traced and counted under every convention, the published figures each
convention reproduces, the claims people make checked, the summary table and the comparison with the paper."""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
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
