"""The inference engine on real images: maps for every block, statistics, Grad-CAM, the CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.explain import Explainer
from explorer.nets import make_config
from explorer.nets.weights import random_weights
from explorer.runtime import Engine, crop_for_network, imagenet_labels, pick_device, to_tensor
from explorer.runtime.images import load_image
from tests.cli import explorer
from tests.conftest import CPU_PRECISION

SAMPLES = Path(__file__).resolve().parents[2] / "explorer" / "samples"


@pytest.fixture(scope="module")
def engine() -> Engine:
    model, info = random_weights(make_config("released"))
    return Engine(model, info, device="cpu", top_k=6, cpu_dtype=torch.float32)  # exact against float32 forwards


@pytest.fixture(scope="module")
def cat_result(engine):
    loaded = load_image(SAMPLES / "cat.jpg")
    return engine.run(loaded.image, loaded.notes)


def test_preprocessing_equals_timms_for_the_tf_in1k_weights(sample_paths):
    timm = pytest.importorskip("timm")
    model = timm.create_model("inception_resnet_v2", pretrained=False)
    config = timm.data.resolve_data_config({}, model=model)
    assert (config["input_size"], config["interpolation"], config["crop_pct"]) == ((3, 299, 299), "bicubic", 0.8975)
    transform = timm.data.create_transform(**config)
    wide = Image.open(SAMPLES / "rocket.jpg").convert("RGB").resize((1500, 300))  # 5:1, pre-cropped by us
    for image in [Image.open(p).convert("RGB") for p in sample_paths] + [wide]:
        difference = (to_tensor(crop_for_network(image))[0] - transform(image)).abs()
        assert difference.max() <= 2 / 255 + 1e-6  # at most one intensity level (Pillow's rounding)
        assert difference.mean() < 1e-3


def test_labels_are_torchvisions_imagenet_classes():
    from torchvision.models import ResNet50_Weights

    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[281] == "tabby"
    assert labels == tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])  # the public route agrees


def test_to_tensor_is_torchvisions_arithmetic(sample_paths):
    from torchvision.transforms.v2 import functional as TF

    for path in sample_paths:
        crop = crop_for_network(load_image(path).image)
        expected = TF.normalize(TF.to_dtype(TF.pil_to_tensor(crop), torch.float32, scale=True), [0.5] * 3, [0.5] * 3)
        torch.testing.assert_close(to_tensor(crop)[0], expected, rtol=0, atol=1e-6)


def test_the_cpu_path_to_a_first_result_imports_neither_torchvision_nor_the_compiler():
    script = (
        "import sys; from explorer.runtime.images import load_image; from explorer.runtime import Engine;"
        "from explorer.nets import make_config; from explorer.nets.weights import random_weights;"
        "e = Engine(*random_weights(make_config('released')), device='cpu');"
        "r = e.run(load_image('explorer/samples/cat.jpg').image);"
        "print(r.top5[0].label in e.labels, 'torchvision' in sys.modules, 'torch._dynamo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=SAMPLES.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]  # each costs seconds of start-up


def test_maps_for_every_block_in_forward_order(engine, cat_result):
    x = to_tensor(crop_for_network(load_image(SAMPLES / "cat.jpg").image))
    with torch.no_grad():
        logits, intermediates = engine.model.forward_intermediates(x)
    assert [b.name for b in cat_result.blocks] == list(intermediates)
    for block in cat_result.blocks:
        tensor = intermediates[block.name][0]
        channels, height, width = tensor.shape
        assert block.shape == (channels, height, width)
        assert block.mean.shape == block.max.shape == (height, width)
        assert block.top_maps.shape == (6, height, width)
        np.testing.assert_allclose(block.mean, tensor.mean(0).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(block.max, tensor.amax(0).numpy(), rtol=1e-5, atol=1e-6)
        best = tensor.mean((1, 2)).topk(6).indices.tolist()
        assert list(block.top_channels) == best
        np.testing.assert_allclose(block.top_maps[0], tensor[best[0]].numpy(), rtol=1e-5, atol=1e-6)
        assert block.stats.zero_fraction == pytest.approx(float((tensor == 0).float().mean()), abs=1e-6)
        assert block.stats.mean == pytest.approx(float(tensor.mean()), rel=1e-4, abs=1e-7)
        assert block.stats.std == pytest.approx(float(tensor.std()), rel=1e-4)
    probabilities = logits.softmax(1)[0]
    assert [p.index for p in cat_result.top5] == probabilities.topk(5).indices.tolist()
    assert cat_result.top5[0].label == imagenet_labels()[cat_result.top5[0].index]


def test_residual_ratio_only_for_residual_blocks(engine, cat_result):
    ratios = {b.name: b.stats.residual_ratio for b in cat_result.blocks}
    x = to_tensor(crop_for_network(load_image(SAMPLES / "cat.jpg").image))
    with torch.no_grad():
        _, outputs, residuals = engine.model.forward_intermediates_and_residuals(x)
    names = list(outputs)
    for name, residual in residuals.items():  # |what the block adds| / |what it receives|
        received = outputs[names[names.index(name) - 1]]
        assert ratios[name] == pytest.approx(float(residual.norm() / received.norm()), rel=1e-4), name
    assert ratios["conv2d_1a"] is None and ratios["mixed_6a"] is None
    assert all(ratios[f"repeat_1.{i}"] > 0 for i in range(20))
    # the last C block adds its residual unscaled (scale 1.0): a far larger share than the scaled ones
    assert ratios["block8"] > 2 * max(ratios[f"repeat_2.{i}"] for i in range(9))


def test_results_are_plain_values(cat_result):
    again = pickle.loads(pickle.dumps(cat_result))
    assert again.top5 == cat_result.top5
    document = json.loads(json.dumps(cat_result.to_json()))
    assert [b["name"] for b in document["blocks"]] == [b.name for b in cat_result.blocks]
    assert set(cat_result.timings_ms) == {"preprocess", "forward and maps", "total"}
    assert cat_result.device == "cpu (fp32)"  # as asked for
    assert cat_result.image.shape == (299, 299, 3) and cat_result.image.dtype == np.uint8


def test_a_bright_square_lights_up_its_region_in_early_blocks(engine):
    canvas = np.zeros((333, 333, 3), dtype=np.uint8)
    canvas[60:140, 200:280] = 255  # top right, inside the centre crop
    result = engine.run(Image.fromarray(canvas))
    ys, xs = np.nonzero(result.image[..., 0] > 128)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b"):
        block = result.block(name)
        deviation = np.abs(block.mean - np.median(block.mean))
        height, width = deviation.shape
        scale_y, scale_x = height / 299, width / 299
        margin = 6  # receptive field and padding, in block cells
        inside = np.zeros_like(deviation, dtype=bool)
        inside[
            max(int(top * scale_y) - margin, 0) : int(bottom * scale_y) + margin,
            max(int(left * scale_x) - margin, 0) : int(right * scale_x) + margin,
        ] = True
        border = np.zeros_like(inside)
        border[:margin, :] = border[-margin:, :] = border[:, :margin] = border[:, -margin:] = True
        peak = np.unravel_index(np.argmax(np.where(border, 0, deviation)), deviation.shape)
        assert inside[peak], name
        assert deviation[inside].mean() > 10 * deviation[~inside & ~border].mean() + 1e-9, name


def test_grad_cam_is_sane(engine, cat_result):
    image = load_image(SAMPLES / "cat.jpg").image
    cam = Explainer(engine).grad_cam(image, "repeat_1.10")
    assert cam.class_index == cat_result.top5[0].index  # the top-1 class by default
    assert cam.cam.shape == (17, 17) and (cam.cam >= 0).all()
    assert cam.heatmap.shape == (299, 299)
    assert cam.heatmap.min() >= 0 and cam.heatmap.max() <= 1 + 1e-6
    if cam.cam.max() > 0:
        assert cam.heatmap.max() == pytest.approx(1.0, abs=1e-5)
    other = Explainer(engine).grad_cam(image, "mixed_7a", class_index=281)
    assert other.label == "tabby" and other.cam.shape == (8, 8)
    assert not any(p.grad is not None for p in engine.model.parameters())  # the shared model is untouched
    with pytest.raises(ValueError):
        Explainer(engine).grad_cam(image, "repeat_9.0")
    with pytest.raises(ValueError):
        Explainer(engine).grad_cam(image, "block8", class_index=1000)


def test_concurrent_runs_share_one_engine(engine):
    images = [load_image(SAMPLES / name).image for name in ("cat.jpg", "coffee.jpg", "rocket.jpg")]
    serial = [engine.run(image) for image in images]
    results: list = [None] * 3

    def work(i: int) -> None:
        results[i] = engine.run(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial, strict=True):
        assert [p.index for p in got.top5] == [p.index for p in want.top5]
        np.testing.assert_allclose(got.block("repeat_2.3").mean, want.block("repeat_2.3").mean, atol=1e-5)


def test_device_choice():
    assert pick_device("cpu") == (torch.device("cpu"), None)
    device, note = pick_device("cuda")
    if not torch.cuda.is_available():
        assert device.type == "cpu" and "CUDA is not available" in note
    with pytest.raises(ValueError):
        pick_device("tpu")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return explorer("infer", *args)


def test_cli_json_and_png_maps(tmp_path):
    out = tmp_path / "maps"
    result = run_cli(str(SAMPLES / "camera.jpg"), "--format", "json", "--out", str(out), "--top-k", "2")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"weights", "device", "top5", "blocks"} <= set(document)
    assert document["device"] == f"cpu ({CPU_PRECISION})" or torch.cuda.is_available()
    assert [set(p) >= {"label", "probability"} for p in document["top5"]] == [True] * 5
    names = [b["name"] for b in document["blocks"]]
    assert names[0] == "conv2d_1a" and names[-1] == "conv2d_7b" and len(names) == 51
    assert {"mean", "std", "zero_fraction"} <= set(document["blocks"][0]["statistics"])
    files = sorted(p.name for p in out.iterdir())
    assert "conv2d_2b_mean.png" in files and "repeat_1.4_max.png" in files
    assert len(files) == 51 * (2 + 2)
    assert Image.open(out / "conv2d_2b_mean.png").size == (147, 147)
    assert "random weights" in result.stderr


def test_cli_several_images_and_bad_input(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    result = run_cli(str(SAMPLES / "cat.jpg"), str(tmp_path / "notes.jpg"), str(tmp_path / "absent.png"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert "cat.jpg: random (seed 0)" in result.stdout
    bad_device = run_cli(str(SAMPLES / "cat.jpg"), "--device", "tpu")
    assert bad_device.returncode == 2 and "Traceback" not in bad_device.stderr


def test_each_networks_preprocessing_is_timms_for_its_weights():
    timm = pytest.importorskip("timm")
    from explorer.runtime.preprocessing import preprocessing_for

    for variant, name in (("released", "inception_resnet_v2"), ("inception-v4", "inception_v4")):
        config = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        ours = preprocessing_for(variant)
        assert (config["crop_pct"], config["interpolation"], config["mean"], config["std"]) == (
            ours.crop_pct,
            ours.interpolation,
            ours.mean,
            ours.std,
        ), variant
    model, info = random_weights(make_config("inception-v4"))
    assert Engine(model, info, device="cpu").preprocessing.crop_pct == 0.875
