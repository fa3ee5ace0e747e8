"""The networks, written to read like the paper: units, one class per block type, stems, each network built from
a table of widths, repeats and scales; where the paper contradicts itself; weights in and out.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning" (AAAI 2017, arXiv 1602.07261). Module names and shapes equal timm's, so its ImageNet weights load
with ``strict=True``.
"""

from explorer import lazy_exports

__all__ = [
    "BN_EPS",
    "CONFIG_FIELDS",
    "INCEPTION_V4",
    "PAPER_SCALES",
    "PAPER_V1",
    "PAPER_V2",
    "RELEASED",
    "V4_FIELDS",
    "VARIANTS",
    "VARIANT_DESCRIPTIONS",
    "Block8",
    "Block17",
    "Block35",
    "BlockCounts",
    "Component",
    "ConcatBranches",
    "ConvBnRelu",
    "FactorisedBlock",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionNetwork",
    "InceptionResNetBlock",
    "InceptionResNetConfig",
    "InceptionResNetV2",
    "InceptionV4",
    "InceptionV4Config",
    "InceptionV4ReductionB",
    "Mixed3a",
    "Mixed4a",
    "Mixed5a",
    "Mixed5b",
    "NetworkConfig",
    "PaperContradiction",
    "ReductionA",
    "ReductionB",
    "RepeatedBlocks",
    "ResidualScales",
    "StemName",
    "avg_pool_projection",
    "build_model",
    "build_stem",
    "chain",
    "make_config",
    "max_pool",
    "model_from_config",
    "paper_contradictions",
]

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "blocks": (
            "Block8",
            "Block17",
            "Block35",
            "FactorisedBlock",
            "InceptionResNetBlock",
            "Mixed5b",
            "ReductionA",
            "ReductionB",
            "RepeatedBlocks",
        ),
        "build": ("CONFIG_FIELDS", "V4_FIELDS", "build_model", "make_config", "model_from_config"),
        "inception_blocks": ("InceptionA", "InceptionB", "InceptionC", "InceptionV4ReductionB"),
        "networks": ("Component", "InceptionNetwork", "InceptionResNetV2", "InceptionV4"),
        "paper": ("PaperContradiction", "paper_contradictions"),
        "stems": ("Mixed3a", "Mixed4a", "Mixed5a", "build_stem"),
        "tables": (
            "INCEPTION_V4",
            "PAPER_SCALES",
            "PAPER_V1",
            "PAPER_V2",
            "RELEASED",
            "VARIANT_DESCRIPTIONS",
            "VARIANTS",
            "BlockCounts",
            "InceptionResNetConfig",
            "InceptionV4Config",
            "NetworkConfig",
            "ResidualScales",
            "StemName",
        ),
        "units": ("BN_EPS", "ConcatBranches", "ConvBnRelu", "avg_pool_projection", "chain", "max_pool"),
    },
)
