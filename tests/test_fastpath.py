"""Inference rewrites keep the numbers; the bf16 pipeline agrees with float32 (the GPU path's code on the CPU)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from explorer.fastpath import fold_batch_norms, inference_copy
from explorer.inference import Engine, block_groups, pipeline
from explorer.model import build_model
from explorer.weights import WeightsInfo
from tests.conftest import image_tensor
from tests.prototype import set_prototype_head


def test_folding_keeps_every_block_output(released, photos):
    before = {k: v.clone() for k, v in released.state_dict().items()}
    rng = torch.random.get_rng_state()
    folded = inference_copy(released)
    assert torch.equal(torch.random.get_rng_state(), rng)  # nothing drawn from anyone's random numbers
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in released.modules()) == 204  # the original is untouched
    assert all(torch.equal(v, before[k]) for k, v in released.state_dict().items())
    with torch.no_grad():
        logits, blocks = released.forward_intermediates(photos)
        folded_logits, folded_blocks = folded.forward_intermediates(photos)
    for name, tensor in blocks.items():
        scale = tensor.abs().max().clamp_min(1e-6)
        assert (folded_blocks[name] - tensor).abs().max() / scale < 1e-4, name
    assert (folded_logits - logits).abs().max() < 1e-4


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def test_bf16_pipeline_matches_float32_on_the_samples(sample_paths):
    model = build_model("released", seed=3)
    images = torch.cat([image_tensor(p) for p in sample_paths])
    set_prototype_head(model, images)
    folded = fold_batch_norms(model).to(memory_format=torch.channels_last)
    x = images.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        exact, layout = pipeline(folded, x, top_k=4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast, fast_layout = pipeline(folded, x, top_k=4)
    assert layout == fast_layout
    engine = Engine(model, WeightsInfo("prototype head", random=False), device="cpu", top_k=4)
    crops = [np.zeros((299, 299, 3), np.uint8)] * len(images)
    exact_results = [engine._unpack(row, layout, c, ()) for row, c in zip(exact.numpy(), crops, strict=True)]
    fast_results = [engine._unpack(row, layout, c, ()) for row, c in zip(fast.float().numpy(), crops, strict=True)]
    for i, (want, got) in enumerate(zip(exact_results, fast_results, strict=True)):
        assert want.top5[0].index == i  # the known answer in float32
        assert got.top5[0].index == i  # kept in bf16
        for a, b in zip(want.blocks, got.blocks, strict=True):
            if a.mean.std() > 0:
                assert correlation(a.mean, b.mean) >= 0.99, (i, a.name)


def test_pipeline_reduces_each_run_of_residual_blocks_together_and_fills_a_given_buffer(photos):
    model = inference_copy(build_model("released"))
    groups = block_groups(model)
    assert [name for group in groups for name in group.names] == model.block_names()
    assert [len(g.names) for g in groups if g.residual] == [10, 20, 10]  # A, B, C (the last C block included)
    with torch.inference_mode():
        packed, layout = pipeline(model, photos[:2], top_k=4)
        buffer = torch.full_like(packed, float("nan"))  # every number must be written
        filled, again = pipeline(model, photos[:2], top_k=4, out=buffer)
    assert filled is buffer and again == layout and torch.equal(buffer, packed)
