"""Inception-ResNet-v2 Explorer: the network, its layer counts, its graph and its activations."""

from explorer.model import VARIANTS, InceptionResNetConfig, InceptionResNetV2, build_model, make_config

__all__ = ["VARIANTS", "InceptionResNetConfig", "InceptionResNetV2", "build_model", "make_config"]
