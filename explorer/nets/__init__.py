"""The networks, written to read like the paper: units, one class per block type, stems, each network built from
a table of widths, repeats and scales; where the paper contradicts itself; weights in and out.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning" (AAAI 2017, arXiv 1602.07261). Module names and shapes equal timm's, so its ImageNet weights load
with ``strict=True``.
"""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
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
        "build": (
            "CONFIG_FIELDS",
            "MAX_BLOCKS",
            "V4_FIELDS",
            "build_model",
            "make_config",
            "model_from_config",
        ),
        "hub": (
            "DEFAULT_TAG",
            "download_hub_weights",
        ),
        "inception_blocks": (
            "InceptionA",
            "InceptionB",
            "InceptionC",
            "InceptionV4ReductionB",
        ),
        "loading": ("load_weights",),
        "networks": (
            "Component",
            "InceptionNetwork",
            "InceptionResNet",
            "InceptionResNetV2",
            "InceptionV4",
            "is_within",
        ),
        "paper": (
            "PaperContradiction",
            "paper_contradictions",
        ),
        "stems": (
            "Mixed3a",
            "Mixed4a",
            "Mixed5a",
            "build_stem",
        ),
        "tables": (
            "INCEPTION_V4",
            "PAPER_SCALES",
            "PAPER_V1",
            "PAPER_V2",
            "RELEASED",
            "VARIANTS",
            "VARIANT_DESCRIPTIONS",
            "BlockCounts",
            "InceptionResNetConfig",
            "InceptionV4Config",
            "NetworkConfig",
            "ResidualScales",
            "StemName",
        ),
        "units": (
            "BN_EPS",
            "ConcatBranches",
            "ConvBnRelu",
            "avg_pool_projection",
            "chain",
            "max_pool",
        ),
        "weights": (
            "WeightsError",
            "WeightsInfo",
            "load_weights_file",
            "random_weights",
        ),
    },
)
