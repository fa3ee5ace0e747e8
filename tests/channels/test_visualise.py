"""Feature visualisation, judged by timm: the optimised image excites its channel more than the photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.channels.features.fourier import FourierImage
from explorer.channels.features.visualise import Settings, start_seeds, visualise
from explorer.nets import make_config
from explorer.nets.loading import load_weights
from explorer.runtime.images import load_image, sample_paths
from explorer.runtime.preprocessing import crop_for_network, to_tensor

timm = pytest.importorskip("timm")

SETTINGS = Settings(steps=48, size=128, seed=3)
#: A stem unit, a B block and a C block, each with a channel.
TARGETS = [("conv2d_3b", 11), ("repeat_1.3", 200), ("repeat_2.2", 1500)]


@pytest.fixture(scope="module")
def network():
    model, _ = load_weights("random", make_config("released"))
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def judge(network):
    """A block's channel mean for images, measured by forward hooks on timm's model with the same weights."""
    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    peer.load_state_dict(network.state_dict())

    def measure(block: str, channel: int, images: torch.Tensor) -> np.ndarray:
        seen = []
        handle = peer.get_submodule(block).register_forward_hook(lambda _m, _i, out: seen.append(out))
        with torch.no_grad():
            peer(images)
        handle.remove()
        return seen[0][:, channel].mean((1, 2)).numpy()

    return measure


def as_input(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.mark.parametrize(("block", "channel"), TARGETS)
def test_the_image_excites_its_channel_more_than_every_photograph_and_its_start(network, judge, block, channel):
    found = visualise(network, "channel", block, [channel], SETTINGS)
    assert found.images.shape == (1, 128, 128, 3) and found.images.dtype == np.uint8
    photos = torch.cat([to_tensor(crop_for_network(load_image(p).image)) for p in sample_paths()])
    start = FourierImage(start_seeds(SETTINGS.seed, [channel]), SETTINGS.size)().detach() * 2 - 1
    optimised = judge(block, channel, as_input(found.images))[0]
    assert optimised > judge(block, channel, photos).max()
    assert optimised > 2 * judge(block, channel, start)[0]
    assert found.trace[-1][1][0] > found.trace[0][1][0]  # the objective rose
    assert found.final[0] == pytest.approx(optimised, rel=0.05)  # ours and timm's measure agree


def test_a_batch_of_channels_is_one_by_one_runs_and_a_seed_repeats_itself(network):
    block, channels = "repeat.2", [5, 40, 99]
    batch = visualise(network, "channel", block, channels, Settings(steps=24, size=96, seed=1))
    alone = [visualise(network, "channel", block, [c], Settings(steps=24, size=96, seed=1)) for c in channels]
    assert np.argsort(batch.final).tolist() == np.argsort([a.final[0] for a in alone]).tolist()
    # Not the very same pixels: Adam turns float rounding in near-zero gradients into whole steps.
    np.testing.assert_allclose(batch.final, [a.final[0] for a in alone], rtol=0.25)
    again = visualise(network, "channel", block, [channels[0]], Settings(steps=24, size=96, seed=1))
    assert np.array_equal(again.images, alone[0].images)
    other_seed = visualise(network, "channel", block, [channels[0]], Settings(steps=24, size=96, seed=2))
    assert not np.array_equal(other_seed.images, alone[0].images)


def test_each_image_is_its_own_channels(network, judge):
    """Two channels give different images: each excites its own channel more than the other's image does."""
    block, channels = "repeat_1.3", [200, 900]
    found = visualise(network, "channel", block, channels, SETTINGS)
    images = as_input(found.images)
    first, second = (judge(block, c, images) for c in channels)
    assert first[0] > first[1] and second[1] > second[0]


def test_neuron_unit_and_class_objectives(network):
    settings = Settings(steps=32, size=128)
    neuron = visualise(network, "neuron", "repeat.5", [7], settings)
    unit = visualise(network, "channel", "repeat_1.0.branch1.2", [30], settings)
    logit = visualise(network, "class", "", [281], settings)
    for found in (neuron, unit, logit):
        assert found.final[0] > 2 * max(found.trace[0][1][0], 0.01)  # the untransformed final image's value
        assert [step for step, _ in found.trace] == [0, 16, 31]


@pytest.mark.parametrize(
    ("objective", "node", "channels", "message"),
    [
        ("channel", "repeat.99", [0], "unknown block 'repeat.99'"),
        ("channel", "repeat.4", [320], "repeat.4 has channels 0 to 319, not 320"),
        ("channel", "repeat.4.branch9", [0], "is not an output inside its block"),
        ("class", "", [1000], "the network has classes 0 to 999, not 1000"),
        ("dream", "repeat.4", [0], "unknown objective 'dream'"),
        ("channel", "repeat.4", [], "give at least one channel"),
    ],
)
def test_bad_targets_are_refused_before_any_work(network, objective, node, channels, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        visualise(network, objective, node, channels, Settings(steps=1, size=64))


def test_a_gallery_computes_each_channel_once_however_many_threads_ask(network, monkeypatch):
    import threading

    import explorer.channels.features.gallery as gallery_module
    from explorer.channels.features.gallery import Gallery

    calls: list[list[int]] = []
    real = gallery_module.visualise

    def counted(model, objective, node, channels, *args, **kwargs):
        calls.append(list(channels))
        return real(model, objective, node, channels, *args, **kwargs)

    monkeypatch.setattr(gallery_module, "visualise", counted)
    gallery, settings = Gallery(), Settings(steps=8, size=64)
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(gallery.images(network, "id", "conv2d_2a", [1, 2, 3], settings, "cpu"))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c for call in calls for c in call) == [1, 2, 3]  # each channel made once, by one thread
    assert all(sorted(r) == [1, 2, 3] for r in results) and len(results) == 4
    assert all(r[1] is results[0][1] for r in results)  # the very same kept value
    more = gallery.images(network, "id", "conv2d_2a", [3, 4], settings, "cpu")
    assert calls[-1] == [4] and more[3] is results[0][3]
    assert gallery.known("other weights", "conv2d_2a", "channel", settings, 3) is None


def test_the_command_writes_the_png_and_its_json(tmp_path, capsys):
    import json

    from PIL import Image

    from explorer.cli import main

    out = tmp_path / "channel.png"
    argv = ["visualize", "--block", "mixed_5b", "--channel", "3", "8", "--steps", "17", "--size", "64"]
    assert main([*argv, "--weights", "random", "--out", str(out), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["step"] for t in report["trace"]] == [0, 16] and len(report["final"]) == 2
    assert report["seconds"] > 0 and report["out"] == str(out)
    assert Image.open(out).size == (2 * 64 + 2, 64)  # the two channels side by side
    assert main([*argv, "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["visualize", "--block", "mixed_5b", "--channel", "320", "--out", str(tmp_path / "y.png")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["channel.png"]  # nothing else written


def test_the_transforms_as_one_resampling_are_lucids_chain_step_by_step():
    """Pad, an integer crop, scale and rotation about the centre (borders clamped), another crop: done one after
    another as Lucid does, on the same draws, they give what the single resampling of each step gives."""
    import math

    import torch.nn.functional as F

    from explorer.channels.features.robustness import ANGLES, SCALES, draw_transforms, robust

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    draws = torch.Generator().manual_seed(5)

    def crop(x, pixels):
        dx, dy = (int(torch.randint(pixels + 1, (1,), generator=draws)) for _ in range(2))
        return x[:, :, dy : x.shape[2] - pixels + dy, dx : x.shape[3] - pixels + dx]

    for theta in draw_transforms(24, 64, torch.Generator().manual_seed(5)):
        x = crop(F.pad(images, (12, 12, 12, 12), value=0.5), 8)
        scale = SCALES[int(torch.randint(len(SCALES), (1,), generator=draws))]
        angle = math.radians(ANGLES[int(torch.randint(len(ANGLES), (1,), generator=draws))])
        turn = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0]]) / scale
        grid = F.affine_grid(turn.expand(2, 2, 3), list(x.shape), align_corners=False)
        x = crop(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), 4)
        torch.testing.assert_close(robust(images, theta), x, atol=1e-4, rtol=0)


def test_the_resamplings_gradient_is_grid_samples_own_without_atomics():
    """The backward that gathers (a GPU's, repeatable there) against grid_sample's autograd, on the image's pixels."""
    import torch.nn.functional as F

    from explorer.channels.features.robustness import PAD, draw_transforms, output_size, robust

    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = output_size(40)
    for theta in draw_transforms(16, 40, torch.Generator().manual_seed(1)):
        upstream = torch.randn(2, 3, out, out, generator=torch.Generator().manual_seed(2))
        (ours,) = torch.autograd.grad((robust(images, theta, gather=True) * upstream).sum(), images)
        grid = F.affine_grid(theta.expand(2, 2, 3), [2, 3, out, out], align_corners=False)
        padded = F.pad(images, (PAD, PAD, PAD, PAD), value=0.5)
        reference = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
        (theirs,) = torch.autograd.grad((reference * upstream).sum(), images)
        torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)
