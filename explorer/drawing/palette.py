"""One colour per component, shared by the charts and the block graph so they read alike."""

COMPONENT_COLOURS: dict[str, str] = {
    "stem": "#8c8c8c",
    "mixed_5b": "#b07aa1",
    "block_a": "#4e79a7",
    "reduction_a": "#f28e2b",
    "block_b": "#59a14f",
    "reduction_b": "#e15759",
    "block_c": "#76b7b2",
    "final_conv": "#edc948",
    "head": "#9c755f",
    "total": "#333333",
}
