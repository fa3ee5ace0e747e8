"""The residual-scaling experiment moves the statistics the way the paper's argument says."""

from __future__ import annotations

from explorer.lessons.experiments import run_experiment, settings
from explorer.nets.weights import random_weights
from explorer.runtime.images import load_image
from tests.conftest import SAMPLES


def test_removing_the_scaling_makes_activations_grow_and_each_block_add_more():
    runs = run_experiment(load_image(SAMPLES / "cat.jpg").image, random_weights, settings((0.3, 0.3, 0.3)))
    released, unscaled, custom, no_shortcut, plain = runs
    assert unscaled.setting.scales == (1.0, 1.0, 1.0) and not no_shortcut.setting.shortcuts
    assert plain.setting.scales == (1.0, 1.0, 1.0) and not plain.setting.shortcuts
    for block in ("repeat.9", "repeat_1.19", "repeat_2.8", "conv2d_7b"):
        assert unscaled.std_of(block) > 10 * released.std_of(block), block
        assert released.std_of(block) < custom.std_of(block) < unscaled.std_of(block), block
    ratios = {run.setting.label: [b.stats.residual_ratio for b in run.blocks if b.stats.residual_ratio] for run in runs}
    mean = {label: sum(values) / len(values) for label, values in ratios.items()}
    assert mean[unscaled.setting.label] > 2 * mean[released.setting.label]
    # the same weights throughout: the stem, before any residual, is identical
    assert released.std_of("conv2d_4a") == unscaled.std_of("conv2d_4a") == no_shortcut.std_of("conv2d_4a")


def test_without_shortcuts_the_scale_compounds_and_the_plain_network_does_not():
    """Scaled branches without shortcuts shrink by the scale block after block, which the same blocks unscaled
    (a plain Inception network, the fair comparison) do not."""
    runs = run_experiment(load_image(SAMPLES / "cat.jpg").image, random_weights, settings())
    released, _, scaled, plain = runs
    last_a = "repeat.9"
    # ten A blocks each multiplying by 0.17 at most: the scaled one is orders of magnitude smaller
    assert scaled.std_of(last_a) < 1e-3 * plain.std_of(last_a)
    assert scaled.std_of("repeat_2.8") < 1e-6 * released.std_of("repeat_2.8") < plain.std_of("repeat_2.8")
