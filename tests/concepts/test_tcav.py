"""TCAV through captum.concept on a network whose class is built from one concept: the concept is significant,
random "concepts" are not."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from explorer.concepts.cav import REGULARISATION, fit
from explorer.concepts.tcav import random_sets, tcav, tcav_captum


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
        return self.forward_intermediates(x)[0]

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.features(x)
        pooled = self.pooled(self.relu(features))
        detector = pooled.flatten(1)[:, 0]
        return torch.stack([detector, torch.full_like(detector, 0.5)], 1), {"features": features, "pooled": pooled}


def test_a_class_built_from_stripes_uses_stripes_and_not_random_concepts():
    """Stripes are significant at both blocks; none of eight noise "concepts" (drawn as the random sets are) is.
    Their scores alone would pass the t-test for some of them (a fixed set's random CAV sits on one side): the
    CAVs' held-out accuracy, no better than random sets', is what refuses them."""
    concepts = {"stripes": stripes(30, 3)} | {f"noise {k}": noise(30, 10 + k) for k in range(8)}
    found = tcav(
        StripeNetwork(),
        ["features", "pooled"],
        0,
        stripes(30, 2),  # the class's examples
        concepts,
        random_sets(noise(200, 1), runs=20, size=30, seed=0),
    )
    for block in ("features", "pooled"):
        by_name = {f.concept: f for f in found if f.block == block}
        assert by_name["stripes"].significant and by_name["stripes"].p_value < 0.01, by_name["stripes"]
        assert by_name["stripes"].accuracy > 0.6 and by_name["stripes"].separation_p < 0.01
        assert len(by_name["stripes"].scores) == 20 and len(by_name["stripes"].random_scores) == 20
        refused = [f for name, f in by_name.items() if name.startswith("noise") and not f.significant]
        assert len(refused) == 8, [f for f in by_name.values() if f not in refused]
        assert any(f.p_value < 0.05 for f in refused)  # what the accuracy test is there for
    assert {f.concept: f for f in found if f.block == "pooled"}["stripes"].score > 0.9
    assert found[0].to_json()["block"] == "features" and 0 <= found[0].to_json()["cav_accuracy"] <= 1


def test_our_tcav_equals_captums_tcav_given_the_same_cavs():
    """The oracle: captum.concept.TCAV (activations through its hooks, gradients through LayerGradientXActivation,
    scores in its own code) with our classifier gives the scores our one-Gram-matrix path gives, at two blocks."""
    arguments = (
        StripeNetwork(),
        ["features", "pooled"],
        0,
        stripes(24, 2),
        {"stripes": stripes(20, 3), "noise": noise(20, 4)},
        random_sets(noise(120, 1), runs=10, size=20, seed=5),
    )
    ours = tcav(*arguments, batch_size=8, seed=3)
    theirs = tcav_captum(*arguments, batch_size=8, seed=3)
    assert [(f.concept, f.block) for f in ours] == [(f.concept, f.block) for f in theirs]
    for mine, captums in zip(ours, theirs, strict=True):
        assert mine.scores == pytest.approx(captums.scores, abs=1e-6)  # Captum's are float32
        assert mine.random_scores == pytest.approx(captums.random_scores, abs=1e-6)
        assert mine.p_value == pytest.approx(captums.p_value, rel=1e-4)
    assert len({m.scores for m in ours}) == 4  # four different lists: the comparison is not of constants
    assert {f.concept: f.accuracy for f in ours if f.block == "pooled"}["stripes"] > 0.9


class CountingStripeNetwork(StripeNetwork):
    """The stripe network, counting the images it is shown."""

    seen = 0

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.seen += len(x)
        return super().forward_intermediates(x)


def test_the_random_sets_pool_goes_through_the_network_once():
    """Ten runs of 20 drawn from a pool of 40: the network sees the pool once, each concept's set and the class's
    images, not each random set; the scores are those of the same sets given one by one."""
    pool, images, concepts = noise(40, 1), stripes(12, 2), {"stripes": stripes(20, 3)}
    drawn = random_sets(pool, runs=10, size=20, seed=4)
    counting = CountingStripeNetwork()
    pooled = tcav(counting, ["features", "pooled"], 0, images, concepts, drawn, batch_size=16)
    assert counting.seen == 40 + 20 + 12
    one_by_one = tcav(StripeNetwork(), ["features", "pooled"], 0, images, concepts, list(drawn), batch_size=16)
    for mine, theirs in zip(pooled, one_by_one, strict=True):
        assert mine.scores == pytest.approx(theirs.scores, abs=1e-6) and mine.accuracy == pytest.approx(theirs.accuracy)


def test_the_cav_fit_is_scikit_learns_logistic_regression():
    """Fitted from the Gram matrix alone, the weights Xᵀa and the intercept equal sklearn's (lbfgs, C = 1 / (n λ),
    the same objective in the primal) on data of more dimensions than rows, as a block's activations are."""
    from sklearn.linear_model import LogisticRegression

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 300, generator=generator, dtype=torch.float64) / 300**0.5
    x[:20, :5] += 0.3
    y = torch.cat([torch.ones(20), -torch.ones(20)]).double()
    a, b = fit((x @ x.T).unsqueeze(0), y.unsqueeze(0))
    peer = LogisticRegression(C=1 / (40 * REGULARISATION), tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    assert (a[0] @ x).numpy() == pytest.approx(peer.coef_[0], abs=1e-6)
    assert float(b[0]) == pytest.approx(float(peer.intercept_[0]), abs=1e-6)


def test_too_few_images_or_random_sets_are_refused_in_one_line():
    pool = noise(40, 1)
    with pytest.raises(ValueError, match="at least 10 random sets, not 3"):
        tcav(StripeNetwork(), ["features"], 0, stripes(20, 2), {"s": stripes(20, 3)}, random_sets(pool, 3, 20, 0))
    with pytest.raises(ValueError, match="s: 4 images; a concept or class needs at least 10"):
        tcav(StripeNetwork(), ["features"], 0, stripes(20, 2), {"s": stripes(4, 3)}, random_sets(pool, 10, 20, 0))


def test_the_example_folders_and_bad_concept_folders_from_the_command_line(tmp_path):
    from tests.cli import explorer as run

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
    small = run(*common, "--concept", str(tmp_path / "ex" / "dots"), "--images", str(tmp_path / "ex" / "stripes"),
                "--random", str(tmp_path / "ex" / "random"), "--per-set", "10")  # fmt: skip
    assert small.returncode != 0 and "10 random images make random sets of 10" in small.stderr
    # The command's work and its JSON on paper-v1, the smallest network (12 GFLOPs against the released one's 26): the
    # method itself is checked against Captum's above, and the engineer tutorial runs this command on the released one.
    done = run(
        *common[:-1], "mixed_7a", "--variant", "paper-v1",
        "--concept", str(tmp_path / "ex" / "dots"), str(tmp_path / "ex" / "random"),
        "--images", str(tmp_path / "ex" / "stripes"), "--per-set", "10", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    found = json.loads(done.stdout)
    assert found["class_index"] == 5 and found["images"] == 10 and found["runs"] == 10
    assert [(r["concept"], r["block"]) for r in found["results"]] == [("dots", "mixed_7a"), ("random", "mixed_7a")]
    for result in found["results"]:
        assert len(result["scores"]) == 10 and len(result["random_scores"]) == 10
        assert 0 <= result["score"] <= 1 and 0 <= result["p_value"] <= 1 and 0 <= result["cav_accuracy"] <= 1
        assert result["significant"] == (result["p_value"] < 0.05 and result["separation_p"] < 0.05)
