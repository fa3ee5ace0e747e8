"""Why did it say that? Attribution maps (Captum), Grad-CAM, the sanity check that tells which follow the model,
and the faithfulness metrics that tell which fits the image (deletion, insertion, ROAD, infidelity)."""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "attribution": (
            "CAM_METHODS",
            "DEFAULTS",
            "METHODS",
            "Attribution",
            "Progress",
            "Settings",
            "check_request",
            "display",
            "explain",
        ),
        "explainer": ("Explainer",),
        "faithfulness": (
            "BASELINES",
            "METRICS",
            "METRIC_DEFAULTS",
            "Faithfulness",
            "MetricSettings",
            "area",
            "check_metrics",
            "counts",
            "pixel_order",
            "ranking",
            "score_maps",
        ),
        "gradcam": ("grad_cam",),
        "sanity": ("THUMBNAIL", "SanityStep", "rank_correlation", "sanity_check", "thumbnail"),
    },
)
