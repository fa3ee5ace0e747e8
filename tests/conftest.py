"""Shared fixtures: the real network and real photographs from assets/samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from explorer.model import InceptionResNetV2, build_model

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def image_tensor(path: Path, size: int = 299) -> torch.Tensor:
    """A photograph as the tf_in1k weights expect it: RGB, resized, scaled to [-1, 1]. (1, 3, size, size)."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return (data.permute(2, 0, 1).float() / 127.5 - 1.0).unsqueeze(0)


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    paths = sorted(SAMPLES.glob("*.jpg"))
    assert len(paths) >= 6, "assets/samples should hold the sample photographs"
    return paths


@pytest.fixture(scope="session")
def photos(sample_paths: list[Path]) -> torch.Tensor:
    """Three real photographs as one batch."""
    return torch.cat([image_tensor(p) for p in sample_paths[:3]])


@pytest.fixture(scope="session")
def released() -> InceptionResNetV2:
    return build_model("released")
