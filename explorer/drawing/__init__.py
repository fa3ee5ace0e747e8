"""Pictures of the network: the block graph (Graphviz), the clickable network map (plotly), colours and heatmaps."""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "figures": ("channel_grid",),
        "graph": (
            "DIRECTIONS",
            "FORMATS",
            "GraphRenderError",
            "TracedNetwork",
            "block_graph",
            "component_graph",
            "network_graph",
            "render",
            "trace_network",
        ),
        "heatmaps": ("COLOUR_SCALE", "colourise", "overlay", "png_bytes"),
        "netmap": ("MapNode", "nearest", "resolve"),
        "palette": ("COMPONENT_COLOURS",),
    },
)
