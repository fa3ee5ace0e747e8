"""Faithfulness metrics: the deletion and insertion curves against timm's model by hand, a map that is right beats
a random one on a network whose answer is known, ROAD's imputation is what the paper defines, the CLI's output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy.ndimage import gaussian_filter

from explorer.explain import METRICS, MetricSettings, area, ranking, score_maps
from explorer.explain.faithfulness import baseline_image
from explorer.explain.road import NEIGHBOURS, impute
from explorer.nets import build_model
from explorer.runtime.images import load_image
from explorer.runtime.preprocessing import crop_for_network, to_tensor
from tests.cli import explorer
from tests.conftest import SAMPLES
from tests.prototype import set_prototype_head

HALF = (0.5, 0.5, 0.5)  # the tf_in1k weights' mean and std


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, photos):
    """The released network with a prototype head (sample photo i is class i, confidently), as a file both we and
    timm load."""
    model = build_model("released", seed=3)
    set_prototype_head(model, photos)
    path = tmp_path_factory.mktemp("weights") / "prototype.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def test_the_curves_recomputed_by_hand_with_timm_equal_the_reported_ones(weights_file, tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    steps, image = 4, SAMPLES / "astronaut.jpg"  # the first sample photo: class 0 of the prototype head
    monkeypatch.setenv("EXPLORER_PRECISION", "fp32")
    done = explorer(
        "explain", str(image), "--weights", str(weights_file), "--device", "cpu", "--method", "saliency", "grad-cam",
        "--class", "0", "--metrics", "deletion", "insertion", "--metric-steps", str(steps), "--baseline", "black",
        "--format", "json", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    reported = {m["method"]: m["metrics"] for m in document["methods"]}
    assert {r["method"] for r in document["ranking"]} == {"saliency", "grad-cam"}
    peer = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=1000).eval()
    peer.load_state_dict(load_file(weights_file))
    x = to_tensor(crop_for_network(load_image(image).image))[0]
    for method, metrics in reported.items():
        assert metrics["steps"] == steps and metrics["baseline"] == "black"
        heatmap = np.load(tmp_path / f"{method}.npy")
        assert heatmap.shape == (299, 299)
        # Highest first, ties in reading order: a sort by (-value, position), written independently of the code's.
        order = np.lexsort((np.arange(heatmap.size), -heatmap.ravel().astype(np.float64)))
        black = torch.full_like(x, -1.0)  # pixel value 0, normalised by mean 0.5 and std 0.5
        for deleting in (True, False):
            images = []
            for s in range(steps + 1):
                changed = torch.zeros(heatmap.size, dtype=torch.bool)
                changed[torch.from_numpy(order[: round(s / steps * heatmap.size)])] = True
                changed = changed.view(299, 299)
                images.append(torch.where(changed, black, x) if deleting else torch.where(changed, x, black))
            with torch.no_grad():
                by_hand = peer(torch.stack(images)).softmax(1)[:, 0].double().numpy()
            curve = metrics["curves"]["deletion" if deleting else "insertion"]
            assert len(curve) == steps + 1
            np.testing.assert_allclose(curve, by_hand, atol=2e-4)
            trapezoid = sum((by_hand[i] + by_hand[i + 1]) / 2 for i in range(steps)) / steps
            assert metrics["deletion" if deleting else "insertion"] == pytest.approx(trapezoid, abs=2e-4)
        assert metrics["curves"]["deletion"][0] > 0.5  # the class is confident on the whole image


def test_the_blur_baseline_is_a_gaussian_of_the_stated_sigma():
    x = to_tensor(crop_for_network(load_image(SAMPLES / "cat.jpg").image))
    settings = MetricSettings(baseline="blur", sigma=4.0)
    blurred = baseline_image(x, settings, HALF, HALF)[0].numpy()
    for channel in range(3):  # SciPy's "mirror" is torch's "reflect"; truncate 3 sigma as the kernel does
        expected = gaussian_filter(x[0, channel].numpy(), 4.0, mode="mirror", truncate=3.0)
        np.testing.assert_allclose(blurred[channel], expected, atol=1e-5)
    mean = baseline_image(x, MetricSettings(baseline="mean"), HALF, HALF)[0]
    assert torch.allclose(mean[:, 0, 0], x[0].mean((1, 2)))
    assert settings.to_json() == {"steps": 50, "baseline": "blur", "sigma": 4.0}


class RegionNetwork(torch.nn.Module):
    """Two classes; class 0's logit is the mean brightness of one square, times 8: nothing else counts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = x[:, :, 8:24, 8:24].mean((1, 2, 3))
        return torch.stack([8 * inside, torch.zeros_like(inside)], 1)


def test_a_map_on_the_region_that_decides_beats_a_random_map_on_every_metric():
    network = RegionNetwork()
    x = torch.full((1, 3, 40, 40), -1.0)
    x[:, :, 8:24, 8:24] = 1.0
    x += 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    right = np.zeros((40, 40), dtype=np.float32)
    right[8:24, 8:24] = 1.0
    right += np.random.default_rng(1).random((40, 40), dtype=np.float32) * 1e-3  # an order inside the square too
    heatmaps = {"right": right, "random": np.random.default_rng(2).random((40, 40), dtype=np.float32)}

    def score(batch):
        with torch.no_grad():
            return network(batch).softmax(1)

    settings = MetricSettings(steps=20, baseline="black", road_percentages=(10, 20, 40), infidelity_samples=64)
    found = {f.method: f for f in score_maps(score, x, heatmaps, 0, METRICS, settings, HALF, HALF)}
    right_scores, random_scores = found["right"], found["random"]
    assert right_scores.value("deletion") < random_scores.value("deletion")
    assert right_scores.value("insertion") > random_scores.value("insertion")
    assert right_scores.value("road") < random_scores.value("road")
    assert right_scores.value("infidelity") < random_scores.value("infidelity")
    assert ranking(list(found.values()), METRICS)[0] == {
        "method": "right",
        "ranks": dict.fromkeys(METRICS, 1),
        "mean rank": 1.0,
    }
    # The curve's own ends: the whole image first, the baseline last (all of the square gone).
    curve = right_scores.curves["deletion"]
    assert curve[0] == pytest.approx(float(score(x)[0, 0]))
    assert curve[-1] == pytest.approx(float(score(-torch.ones_like(x))[0, 0]))
    assert right_scores.value("deletion") == pytest.approx(area(curve))


def test_infidelity_of_several_maps_is_captums_of_each_and_runs_the_perturbed_images_once():
    from captum.metrics import infidelity

    network = RegionNetwork()
    x = torch.randn((1, 3, 40, 40), generator=torch.Generator().manual_seed(3))
    maps = {f"map {i}": np.random.default_rng(i).random((40, 40), dtype=np.float32) for i in range(3)}
    seen = []

    def score(batch):
        seen.append(len(batch))
        with torch.no_grad():
            return network(batch).softmax(1)

    settings = MetricSettings(infidelity_samples=16, seed=5)
    found = score_maps(score, x, maps, 0, ["infidelity"], settings, HALF, HALF)
    assert sum(seen) == 1 + 16  # the image and its 16 perturbations, for the three maps together
    for result, heatmap in zip(found, maps.values(), strict=True):
        generator = torch.Generator().manual_seed(5)  # captum's own run of each map, the seed the settings give

        def perturb(inputs, generator=generator):
            noise = settings.infidelity_noise * torch.randn(inputs.shape, generator=generator)
            return noise, inputs - noise

        alone = infidelity(score, perturb, x, torch.from_numpy(heatmap).expand_as(x[0])[None].contiguous(), target=0,
                           n_perturb_samples=16, max_examples_per_batch=16, normalize=True)  # fmt: skip
        assert result.value("infidelity") == pytest.approx(float(alone[0]), rel=1e-6)
    assert len({result.value("infidelity") for result in found}) == 3  # each map its own score, from shared forwards


def test_noisy_linear_imputation_leaves_each_removed_pixel_at_its_neighbours_weighted_mean():
    rng = np.random.default_rng(0)
    image = rng.random((3, 9, 11)).astype(np.float32)
    removed = rng.random((9, 11)) < 0.6
    removed[4:7, 3:8] = True  # a removed region whose inner pixels have only removed neighbours
    filled = impute(image, removed, noise=0.0, rng=rng)
    np.testing.assert_array_equal(filled[:, ~removed], image[:, ~removed])
    for row, col in zip(*np.nonzero(removed), strict=True):
        total, weight = np.zeros(3), 0.0
        for dr, dc, w in NEIGHBOURS:
            r, c = row + dr, col + dc
            if 0 <= r < 9 and 0 <= c < 11:
                total += w * filled[:, r, c]
                weight += w
        np.testing.assert_allclose(filled[:, row, col], total / weight, atol=1e-5)
    noisy = impute(image, removed, noise=0.1, rng=np.random.default_rng(1))
    assert np.array_equal(noisy[:, ~removed], image[:, ~removed])
    assert 0.05 < float(np.std(noisy[:, removed] - filled[:, removed])) < 0.15
    with pytest.raises(ValueError, match="some pixel kept"):
        impute(image, np.ones((9, 11), dtype=bool), 0.0, rng)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "sharpness"], "unknown metric 'sharpness'; metrics are: deletion, insertion, road, infidelity"),
        (["--metrics", "deletion", "--metric-steps", "0"], "0 is not a whole number from 1 to 1000"),
        (["--metrics", "deletion", "--baseline", "white"], "invalid choice: 'white'"),
    ],
)
def test_bad_metric_arguments_get_one_line(args, message):
    done = explorer("explain", str(SAMPLES / "cat.jpg"), "--weights", "random", *args)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr
