"""Attribution through Captum on real photographs: Grad-CAM as before, every method, the sanity check,
no hooks left behind, concurrent callers, the `explain` command."""

from __future__ import annotations

import json
import subprocess
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from explorer.explain import METHODS, THUMBNAIL, Explainer, Settings, rank_correlation, thumbnail
from explorer.nets import build_model
from explorer.nets.weights import WeightsInfo
from explorer.runtime import Engine
from explorer.runtime.images import load_image
from tests.cli import explorer
from tests.conftest import SAMPLES
from tests.prototype import set_prototype_head
from tests.reference_gradcam import reference_grad_cam

FAST = Settings(steps=4, window=100, stride=100)  # the expensive methods, cut down for a test


@pytest.fixture(scope="module")
def engine(photos) -> Engine:
    """The released network with a prototype head: each sample photo is its own class, so classes mean something."""
    model = build_model("released", seed=3)
    set_prototype_head(model, photos)
    return Engine(model, WeightsInfo("prototype head", random=False), device="cpu", cpu_dtype=torch.float32)


@pytest.fixture(scope="module")
def short_engine(photos) -> Engine:
    """The released network with two blocks of each type, for the checks that run it once per component."""
    model = build_model("released", seed=3, repeats=(2, 2, 2))
    set_prototype_head(model, photos)
    return Engine(model, WeightsInfo("prototype head", random=False), device="cpu", cpu_dtype=torch.float32)


@pytest.fixture(scope="module")
def cat():
    return load_image(SAMPLES / "cat.jpg").image


def hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def test_captums_grad_cam_equals_the_hand_written_one(engine, cat):
    _, x = engine.prepare(cat)
    for block, class_index in (("conv2d_7b", None), ("repeat_1.10", 7), ("mixed_6a", 281)):
        ours = Explainer(engine).grad_cam(cat, block, class_index)
        theirs = reference_grad_cam(engine.source, x.clone(), block, class_index, engine.label)
        assert ours.class_index == theirs.class_index and ours.block == block
        np.testing.assert_allclose(ours.cam, theirs.cam, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(ours.heatmap, theirs.heatmap, rtol=1e-4, atol=1e-5)


def test_every_method_gives_a_map_that_follows_the_class(short_engine, cat):
    engine = short_engine  # every block type, the stem and the head: what each method goes through (116 s in full)
    in_place = [m.inplace for m in engine.source.modules() if isinstance(m, nn.ReLU)]
    for method in METHODS:
        top = Explainer(engine).explain(cat, method, settings=FAST)
        other = Explainer(engine).explain(cat, method, class_index=(top.class_index + 1) % 1000, settings=FAST)
        assert top.heatmap.shape == (299, 299) and top.heatmap.dtype == np.float32, method
        assert np.isfinite(top.heatmap).all() and np.isfinite(other.heatmap).all(), method
        # Grad-CAM keeps the positive part only: a class's map may be empty, but not both
        assert max(top.heatmap.std(), other.heatmap.std()) > 0, method
        assert top.label == engine.label(top.class_index) and top.seconds > 0
        assert (top.block is not None) == method.endswith("grad-cam"), method
        assert rank_correlation(top.heatmap, other.heatmap) < 0.99, method  # another class, another map
    assert hooks(engine.source) == 0 and hooks(engine.private.kept) == 0
    assert [m.inplace for m in engine.source.modules() if isinstance(m, nn.ReLU)] == in_place  # shared model as it was


def test_the_sanity_check_tells_grad_cam_follows_the_model(short_engine, cat):
    engine = short_engine
    original, steps = Explainer(engine).sanity_check(cat, ["grad-cam", "saliency"], settings=FAST)
    assert set(original) == {"grad-cam", "saliency"}
    titles = [s.randomised_from for s in steps["grad-cam"]]
    assert titles[0] == "Head (pool, dropout, FC)" and titles[-1] == "Stem"
    assert min(s.spearman for s in steps["grad-cam"]) < 0.5  # randomised weights, another map
    assert all(-1 <= s.spearman <= 1 for s in steps["saliency"])
    # each step keeps its map (shrunk): the last one, everything random, is not the original's
    last = steps["grad-cam"][-1].thumbnail
    assert last.shape == (THUMBNAIL, THUMBNAIL) and last.dtype == np.float32
    assert rank_correlation(last, thumbnail(original["grad-cam"].heatmap)) == pytest.approx(
        steps["grad-cam"][-1].spearman, abs=0.25
    )
    again = Explainer(engine).explain(cat, "grad-cam", settings=FAST)  # the check randomised a copy, not the engine's
    np.testing.assert_array_equal(again.heatmap, original["grad-cam"].heatmap)
    assert hooks(engine.source) == 0


def test_two_threads_get_their_own_answers(engine, cat):
    classes = (3, 500)
    alone = {c: Explainer(engine).explain(cat, "grad-cam", class_index=c).heatmap for c in classes}
    got: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(2)

    def ask(class_index: int) -> None:
        barrier.wait()
        got[class_index] = Explainer(engine).explain(cat, "grad-cam", class_index=class_index).heatmap

    threads = [threading.Thread(target=ask, args=(c,)) for c in classes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for c in classes:
        np.testing.assert_array_equal(got[c], alone[c])


def test_bad_requests_are_refused_with_the_names_there_are(engine, cat):
    with pytest.raises(ValueError, match="unknown method 'lime'; methods are: grad-cam"):
        Explainer(engine).explain(cat, "lime")
    with pytest.raises(ValueError, match=r"unknown block 'repeat\.99'"):
        Explainer(engine).explain(cat, "grad-cam", block="repeat.99")
    with pytest.raises(ValueError, match=r"class 1000 is outside 0\.\.999"):
        Explainer(engine).explain(cat, "saliency", class_index=1000)


def test_rank_correlation_is_spearmans():
    a = np.arange(100.0).reshape(10, 10)
    assert rank_correlation(a, a**3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a)) == 0.0  # a flat map resembles nothing
    # ties take their average rank: worked by hand, ranks (1.5, 1.5, 1.5, 1.5, 4) against (4, 1.5, ...) give -0.25
    assert rank_correlation(np.array([0.0, 0, 0, 0, 1]), np.array([1.0, 0, 0, 0, 0])) == pytest.approx(-0.25)
    # two maps lit in different places, dark elsewhere, do not resemble each other (ranked by position, the
    # shared zeros would make them correlate at about +0.94)
    one, other = np.zeros(100), np.zeros(100)
    one[99], other[0] = 1.0, 1.0
    assert rank_correlation(one, other) == pytest.approx(-0.0101, abs=1e-4)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return explorer(*args)


def test_cli_explain_json_sanity_and_files(tmp_path):
    result = run_cli(
        "explain", str(SAMPLES / "cat.jpg"), "--weights", "random", "--method", "grad-cam", "occlusion",
        "--window", "100", "--stride", "100", "--class", "281", "--format", "json", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [m["method"] for m in document["methods"]] == ["grad-cam", "occlusion"]
    assert document["methods"][0]["block"] == "conv2d_7b" and document["methods"][1]["block"] is None
    assert all(m["class_index"] == 281 and m["label"] == "tabby" for m in document["methods"])
    raw = np.load(tmp_path / "occlusion.npy")
    assert raw.shape == (299, 299) and raw.dtype == np.float32
    assert (tmp_path / "grad-cam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The sanity check on Grad-CAM alone: occlusion's would run its patches again for each of the 9 steps.
    sanity = run_cli(
        "explain", str(SAMPLES / "cat.jpg"), "--weights", "random", "--method", "grad-cam", "--class", "281",
        "--sanity", "--format", "json", "--out", str(tmp_path / "sanity"),
    )  # fmt: skip
    assert sanity.returncode == 0, sanity.stderr
    steps = json.loads(sanity.stdout)["sanity"]["grad-cam"]
    assert steps[0]["randomised_from"] == "Head (pool, dropout, FC)" and len(steps) == 9
    with Image.open(tmp_path / "sanity" / "grad-cam-sanity.png") as strip:  # the original, then the 9 steps
        assert strip.size == (10 * THUMBNAIL, THUMBNAIL)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "lime"], "error: unknown method 'lime'"),
        (["--block", "nowhere"], "error: unknown block 'nowhere'"),
        (["--class", "-1"], "error: class -1 is outside 0..999"),
    ],
)
def test_cli_explain_bad_input_is_one_line(args, message):
    result = run_cli("explain", str(SAMPLES / "cat.jpg"), "--weights", "random", *args)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr
