"""How the network computes a channel: which channels of the block before build it (gradient x activation, with
an ablation check), the linear view of a block (expanded weights), and where a channel's signal goes next."""

from explorer import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "contributions": ("Ablation", "Circuit", "Contribution", "block_input", "circuit"),
        "expanded": ("Expanded", "expanded_weights"),
        "following": ("Onward", "onward"),
        "paths": ("PIXELS", "NotLinear", "Target", "TargetError", "channel_path", "resolve"),
    },
)
