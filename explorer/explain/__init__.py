"""Why did it say that? Attribution maps (Captum), Grad-CAM, and the sanity check that tells which follow the model."""

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
        "gradcam": ("grad_cam",),
        "sanity": ("THUMBNAIL", "SanityStep", "rank_correlation", "sanity_check", "thumbnail"),
    },
)
