"""torchinfo summaries by component, and the `summary` command line."""

from __future__ import annotations

import subprocess

import pytest

from explorer.analysis.summary import format_summary, shape_text, summarize
from explorer.nets import VARIANTS, build_model, make_config
from tests.cli import explorer


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_components_add_up_to_the_whole(variant):
    summary = summarize(make_config(variant))
    model = build_model(variant, device="meta")
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert sum(c.params for c in summary.components) == summary.params
    assert [c.key for c in summary.components] == [c.key for c in model.components]
    assert summary.output_shape == (1, 1000)


def test_released_summary_matches_the_known_figures():
    summary = summarize(make_config("released"))
    assert summary.params == 55_843_464
    shapes = {c.key: shape_text(c.output_shape) for c in summary.components}
    assert shapes["block_a"] == "35x35x320"
    assert shapes["block_b"] == "17x17x1088"
    assert shapes["block_c"] == "8x8x2080"
    assert shapes["final_conv"] == "8x8x1536"
    # timm's model card lists 13.2 GMACs for inception_resnet_v2 at 299x299
    assert round(summary.macs / 1e9, 1) == 13.2


def test_inception_v4_summary_equals_torchinfo_on_timms_model():
    """The issue's figures, measured with torchinfo on timm's inception_v4: 42,679,816 parameters, 12.25 GMACs."""
    timm = pytest.importorskip("timm")
    import torchinfo

    peer = torchinfo.summary(
        timm.create_model("inception_v4", pretrained=False).eval(), input_size=(1, 3, 299, 299), verbose=0, depth=99
    )
    summary = summarize(make_config("inception-v4"))
    assert summary.params == peer.total_params == 42_679_816
    # torchinfo reckons timm's fused batch-norm-and-ReLU layer a little differently (63 thousand of 12 billion)
    assert abs(summary.macs - peer.total_mult_adds) / peer.total_mult_adds < 1e-5
    assert round(summary.macs / 1e9, 2) == 12.25
    shapes = {c.key: shape_text(c.output_shape) for c in summary.components}
    assert (shapes["block_a"], shapes["block_b"], shapes["block_c"]) == ("35x35x384", "17x17x1024", "8x8x1536")


def test_summary_follows_the_repeats():
    full = summarize(make_config("released"))
    short = summarize(make_config("released", repeats=(5, 10, 5)))
    block = {c.key: c for c in full.components}
    fewer = {c.key: c for c in short.components}
    assert fewer["block_a"].params * 2 == block["block_a"].params
    assert fewer["block_b"].params * 2 == block["block_b"].params
    assert fewer["stem"] == block["stem"]
    assert "x5" in fewer["block_a"].title


def test_format_lists_each_component_and_the_total():
    summary = summarize(make_config("paper-v1"))
    text = format_summary(summary, depth=3)
    for comp in summary.components:
        assert comp.title in text
    assert f"Total: {summary.params:,} parameters" in text
    assert "repeat.0.branch1" in text  # depth 3 reaches the branches


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return explorer(*args)


def test_cli_summary_prints_components():
    result = run_cli("summary", "--variant", "paper-v2")
    assert result.returncode == 0, result.stderr
    summary = summarize(make_config("paper-v2"))
    assert f"{summary.params:,} parameters" in result.stdout
    assert "Inception-ResNet-B x10: output 17x17x1152" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("summary", "--variant", "v9"),
        ("summary", "--repeats", "0", "1", "1"),
        ("summary", "--depth", "x"),
        ("summary", "--depth", "-3"),  # depths go from 0
        ("counts", "--repeats", "99999999", "1", "1"),  # the app's range (1 to 30), not minutes of building
        ("counts", "--repeats", "31", "1", "1"),
        ("counts", "--repeats", "\u0663", "1", "1"),  # an Arabic-Indic 3: int() takes it, a number here is ASCII
        ("counts", "--repeats", "1_0", "1", "1"),  # int() reads 10
        ("summary", "--depth", "\u00b2"),
    ],
)
def test_cli_bad_input_is_one_line_without_traceback(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].count("error") == 1


def test_cli_takes_the_app_limits_and_depth_zero():
    widest = run_cli("summary", "--repeats", "30", "1", "+1", "--depth", "0")
    assert widest.returncode == 0, widest.stderr
    assert "Inception-ResNet-A x30" in widest.stdout and "repeat.0" not in widest.stdout  # depth 0: components only
