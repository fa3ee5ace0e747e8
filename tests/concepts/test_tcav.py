"""TCAV through captum.concept on a network whose class is built from one concept: the concept is significant,
random "concepts" are not."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from explorer.concepts.tcav import random_sets, tcav


def stripes(count: int, seed: int) -> torch.Tensor:
    """Horizontal stripes, random period, phase and contrast, on noise."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(32, dtype=torch.float32).view(1, 1, 32, 1)
    period = torch.randint(4, 8, (count, 1, 1, 1), generator=generator).float()
    phase = torch.rand(count, 1, 1, 1, generator=generator) * 2 * math.pi
    pattern = torch.sin(2 * math.pi * rows / period + phase).expand(count, 3, 32, 32)
    return pattern + 0.3 * torch.randn(count, 3, 32, 32, generator=generator)


def noise(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, 32, 32, generator=generator)


class StripeNetwork(nn.Module):
    """Class 0's logit is how much a horizontal-stripe detector fires, on average over the image; class 1's is
    constant. The detector shares its block with random filters, so a CAV has to find it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        with torch.no_grad():
            edge = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
            self.features.weight[0] = edge.expand(3, 3, 3)
            self.features.bias.zero_()
        self.relu = nn.ReLU()
        self.pooled = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detector = self.pooled(self.relu(self.features(x))).flatten(1)[:, 0]
        return torch.stack([detector, torch.full_like(detector, 0.5)], 1)


def test_a_class_built_from_stripes_uses_stripes_and_not_random_concepts():
    pool = noise(200, 1)
    found = tcav(
        StripeNetwork(),
        ["pooled"],
        0,
        stripes(30, 2),  # the class's examples
        {"stripes": stripes(30, 3), "noise": noise(30, 4)},
        random_sets(pool, runs=20, size=30, seed=0),  # 20: a random CAV scores 0 or 1 here
    )
    by_name = {f.concept: f for f in found}
    assert by_name["stripes"].significant and by_name["stripes"].score > 0.9
    assert len(by_name["stripes"].scores) == 20 and len(by_name["stripes"].random_scores) == 20
    assert not by_name["noise"].significant and by_name["noise"].p_value > 0.05
    assert by_name["stripes"].to_json()["block"] == "pooled"


def test_too_few_images_or_random_sets_are_refused_in_one_line():
    pool = noise(40, 1)
    with pytest.raises(ValueError, match="at least 10 random sets, not 3"):
        tcav(StripeNetwork(), ["features"], 0, stripes(20, 2), {"s": stripes(20, 3)}, random_sets(pool, 3, 20, 0))
    with pytest.raises(ValueError, match="s: 4 images; a concept or class needs at least 10"):
        tcav(StripeNetwork(), ["features"], 0, stripes(20, 2), {"s": stripes(4, 3)}, random_sets(pool, 10, 20, 0))


def test_the_example_folders_and_bad_concept_folders_from_the_command_line(tmp_path):
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, timeout=300)

    made = run("concept-examples", "--out", str(tmp_path / "ex"), "--count", "10")
    assert made.returncode == 0, made.stderr
    from PIL import Image

    for kind in ("stripes", "dots", "random"):
        files = sorted((tmp_path / "ex" / kind).iterdir())
        assert len(files) == 10 and Image.open(files[0]).size == (299, 299)
    again = run("concept-examples", "--out", str(tmp_path / "ex"))
    assert again.returncode != 0 and "exists already" in again.stderr and "Traceback" not in again.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.jpg").write_text("not a picture")
    common = ["tcav", "--weights", "random", "--device", "cpu", "--class", "5", "--blocks", "mixed_6a"]
    for concept, message in [
        (tmp_path / "missing", "no such folder"),
        (tmp_path / "empty", "holds no files"),
        (tmp_path / "texts", "holds no image we can read"),
    ]:
        done = run(*common, "--concept", str(concept), "--images", str(tmp_path / "ex" / "stripes"))
        assert done.returncode != 0 and message in done.stderr.strip().splitlines()[-1], done.stderr
        assert "Traceback" not in done.stderr
    few = run(
        *common, "--runs", "3", "--concept", str(tmp_path / "ex" / "dots"), "--images", str(tmp_path / "ex" / "stripes")
    )
    assert few.returncode != 0 and "at least 10" in few.stderr
