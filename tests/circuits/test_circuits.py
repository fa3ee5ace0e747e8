"""Circuits: exact on units with set weights; on the real network against forward hooks on timm's model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from explorer.circuits import TargetError, circuit, expanded_weights, onward, resolve
from explorer.circuits.contributions import block_input, scores
from explorer.circuits.paths import channel_path, residual_path, run
from explorer.nets import build_model
from explorer.nets.blocks import InceptionResNetBlock
from explorer.nets.units import ConvBnRelu, chain
from tests.conftest import image_tensor

timm = pytest.importorskip("timm")


def identity_bn(unit: ConvBnRelu) -> ConvBnRelu:
    """A unit whose batch norm passes its input unchanged: the unit is its convolution, then a ReLU."""
    with torch.no_grad():
        unit.bn.running_mean.zero_()
        unit.bn.running_var.fill_(1.0 - unit.bn.eps)
        unit.bn.weight.fill_(1.0)
        unit.bn.bias.zero_()
    return unit.eval()


def test_on_a_1x1_unit_each_input_contributes_its_weight_times_its_value():
    unit = identity_bn(ConvBnRelu(4, 2, 1))
    weight = torch.tensor([[0.5, 2.0, 1.0, 0.25], [1.0, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        unit.conv.weight.copy_(weight[:, :, None, None])
    x = torch.rand(3, 4, 5, 5) + 0.1  # positive: the ReLU passes everything
    _, (mean_scores,) = scores(channel_path(unit, 0), x, "mean", split=False)
    torch.testing.assert_close(mean_scores, weight[0] * x.mean((2, 3)).mean(0))
    _, (max_scores,) = scores(channel_path(unit, 0), x, "max", split=False)
    out = (weight[0][None, :, None, None] * x).sum(1).flatten(1)
    at = out.argmax(1)
    expected = torch.stack([weight[0] * x[n].flatten(1)[:, at[n]] for n in range(3)]).mean(0)
    torch.testing.assert_close(max_scores, expected)


def test_a_residual_block_splits_each_score_between_the_shortcut_and_the_branches():
    branch = chain(3, (2, 1))
    identity_bn(branch[0])
    block = InceptionResNetBlock(3, [branch], scale=0.5, activate=False).eval()
    down = torch.tensor([[1.0, 2.0, 0.5], [0.5, 0.25, 1.0]])
    up = torch.tensor([[1.0, 2.0], [0.5, 0.5], [2.0, 1.0]])
    with torch.no_grad():
        branch[0].conv.weight.copy_(down[:, :, None, None])
        block.conv2d.weight.copy_(up[:, :, None, None])
        block.conv2d.bias.zero_()
    x = torch.rand(2, 3, 4, 4) + 0.1
    c = 1
    _, (total, shortcut, branches) = scores(residual_path(block, c), x, "mean", split=True)
    means = x.mean((2, 3)).mean(0)
    torch.testing.assert_close(shortcut, torch.eye(3)[c] * means)
    torch.testing.assert_close(branches, 0.5 * (up[c] @ down) * means)
    torch.testing.assert_close(total, shortcut + branches)


@pytest.fixture(scope="module")
def network():
    return build_model("released")


@pytest.fixture(scope="module")
def peer(network):
    model = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    model.load_state_dict(network.state_dict())
    return model


@pytest.fixture(scope="module")
def photos4(sample_paths):
    return torch.cat([image_tensor(p) for p in sample_paths[:4]])


class Stop(Exception):
    """Raised by a hook once the target block has run: the rest of the network is not needed."""


def timm_response(peer, images, block: str, channel: int, zeroed: list[int], before: str) -> float:
    """The target's mean response (its maximum, mean over the images), with ``zeroed`` channels of the block
    before set to zero: forward hooks on timm's model."""
    found = []

    def zero(_m, _i, output):
        output = output.clone()
        output[:, zeroed] = 0
        return output

    def keep(_m, _i, output):
        found.append(output[:, channel].flatten(1).amax(1).mean())
        raise Stop

    handles = [
        peer.get_submodule(before).register_forward_hook(zero),
        peer.get_submodule(block).register_forward_hook(keep),
    ]
    try:
        with torch.no_grad(), pytest.raises(Stop):
            peer(images)
    finally:
        for handle in handles:
            handle.remove()
    return float(found[0])


@pytest.mark.parametrize(("block", "before"), [("repeat.4", "repeat.3"), ("mixed_6a", "repeat.9")])
def test_ablating_the_top_inputs_in_timm_lowers_the_response_more_than_random_ones(
    network, peer, photos4, block, before
):
    # The channel with the strongest response on these photographs: a channel that is off says nothing.
    with torch.no_grad():
        out = dict(network.blocks())[block](block_input(network, photos4, block))
    channel = int(out.flatten(2).amax(2).mean(0).argmax())
    found = circuit(network, photos4, block, channel, k=5, draws=20)
    assert [c.block for c in found.inputs[:1]] == [before]
    base = timm_response(peer, photos4, block, channel, [], before)
    assert base == pytest.approx(found.ablation.response, rel=1e-4)
    driving = [c.channel for c in found.inputs if c.score > 0][:5]
    top_drop = base - timm_response(peer, photos4, block, channel, driving, before)
    assert top_drop == pytest.approx(found.ablation.top, rel=1e-3, abs=1e-4)  # the reported figure is timm's
    assert top_drop > found.ablation.random and top_drop > 0
    holding = next(c.channel for c in found.inputs if c.score < 0)
    assert timm_response(peer, photos4, block, channel, driving[:1], before) < base
    assert timm_response(peer, photos4, block, channel, [holding], before) > base


def test_paths_equal_the_blocks_outputs_on_every_variant():
    for variant in ("released", "paper-v2", "paper-v1", "inception-v4"):
        model = build_model(variant, repeats=(1, 1, 1))
        x = torch.randn(1, 3, model.config.input_size, model.config.input_size)
        with torch.no_grad():
            for _, block in model.blocks():
                out = block(x)
                for c in (0, out.shape[1] // 2, out.shape[1] - 1):
                    torch.testing.assert_close(channel_path(block, c)(x), out[:, c], atol=1e-4, rtol=1e-4)
                x = out


def test_the_expanded_weights_rebuild_the_linear_path_inside_the_grid(network):
    block = dict(network.blocks())["repeat.2"]
    x = torch.randn(1, 320, 35, 35)
    for channel in (7, 200):
        found = expanded_weights(network, "repeat.2", channel)
        assert found.identity and found.kernels.shape == (320, 5, 5)  # 3x3 then 3x3 sees 5x5
        linear = channel_path(block, channel, linear=True)
        with torch.no_grad():
            offset = linear(torch.zeros_like(x))
            rebuilt = F.conv2d(x, torch.from_numpy(found.kernels)[None], padding=2)[:, 0] + offset + x[:, channel]
            torch.testing.assert_close(linear(x)[:, 4:-4, 4:-4], rebuilt[:, 4:-4, 4:-4], atol=2e-3, rtol=1e-3)
            torch.testing.assert_close(run(block, x, linear=True)[:, channel], linear(x))


def test_where_a_channel_goes_agrees_with_the_circuits_of_the_next_block(network, photos4):
    found = onward(network, photos4[:2], "repeat.3", 11)
    assert found.next_block == "repeat.4"
    target, score = found.channels[0]
    back = circuit(network, photos4[:2], "repeat.4", target, draws=0)
    from_back = next(c.score for c in back.inputs if c.channel == 11)
    assert score == pytest.approx(from_back, rel=1e-3, abs=1e-5)
    assert len(found.classes) == 1000 and found.classes[0][1] >= found.classes[-1][1]


def test_bad_blocks_branches_and_channels_get_one_line_naming_what_exists(network):
    with pytest.raises(TargetError) as error:
        resolve(network, "repeat.99", 0)
    assert "repeat.0 to repeat.9" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(TargetError, match=r"repeat\.0 has no 'branch7'; its branches: branch0, branch1, branch2"):
        resolve(network, "repeat.0.branch7", 0)
    with pytest.raises(TargetError, match=r"repeat\.0 has channels 0 to 319, not 320"):
        resolve(network, "repeat.0", 320)
    with pytest.raises(TargetError, match="conv2d_1a has no 'branch0'; it has no branches"):
        resolve(network, "conv2d_1a.branch0", 0)


def test_unit_of_a_stem_reads_the_pixels(network, photos4):
    found = circuit(network, photos4[:2], "conv2d_1a", 0, draws=4)
    assert {c.block for c in found.inputs} == {"pixels"} and found.ablation.k == 1
    assert found.to_json()["inputs"][0]["colour"] in ("red", "green", "blue")
