"""Inference rewrites keep the numbers; the bf16 pipeline agrees with float32 (the GPU path's code on the CPU)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from explorer.nets import build_model
from explorer.nets.weights import WeightsInfo
from explorer.runtime import Engine, block_groups, cpu_bf16_native, streamed_pipeline
from explorer.runtime.fastpath import fold_batch_norms, inference_copy
from explorer.runtime.pipeline import pipeline
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
    exact_results = [engine.unpack(row, layout, c, ()) for row, c in zip(exact.numpy(), crops, strict=True)]
    fast_results = [engine.unpack(row, layout, c, ()) for row, c in zip(fast.float().numpy(), crops, strict=True)]
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


def test_streamed_cpu_pipeline_packs_what_the_stacked_pipeline_packs(photos):
    model = inference_copy(build_model("released"))
    with torch.inference_mode():
        stacked, layout = pipeline(model, photos[:2], top_k=4)
        streamed, streamed_layout = streamed_pipeline(model, photos[:2], top_k=4)
    assert streamed_layout == layout
    assert torch.allclose(streamed, stacked, rtol=1e-4, atol=1e-5)


def test_cpu_bf16_engine_keeps_the_answers_of_float32(sample_paths):
    """The reduced-precision CPU path, run even where the CPU has no native bf16 (slower there, same numbers)."""
    from PIL import Image

    from explorer.runtime import crop_for_network, to_tensor

    images = [Image.open(p).convert("RGB") for p in sample_paths]
    model = build_model("released", seed=3)
    set_prototype_head(model, torch.cat([to_tensor(crop_for_network(image)) for image in images]))
    info = WeightsInfo("prototype head", random=False)
    exact = Engine(model, info, device="cpu", cpu_dtype=torch.float32).run_batch(images)
    fast_engine = Engine(model, info, device="cpu", cpu_dtype=torch.bfloat16)
    fast = fast_engine.run_batch(images)
    assert fast_engine.precision == "bf16" and fast[0].device == "cpu (bf16)" and exact[0].device == "cpu (fp32)"
    for i, (want, got) in enumerate(zip(exact, fast, strict=True)):
        assert want.top5[0].index == i and got.top5[0].index == i  # the known answer, kept in bf16
        for a, b in zip(want.blocks, got.blocks, strict=True):
            for p, q in ((a.mean, b.mean), (a.max, b.max)):
                if p.std() > 0:
                    assert correlation(p, q) >= 0.99, (sample_paths[i].name, a.name)
            assert abs(a.stats.std - b.stats.std) <= 0.02 * a.stats.std + 1e-6, a.name


def test_precision_follows_the_cpu_and_explorer_precision(monkeypatch):
    monkeypatch.delenv("EXPLORER_PRECISION", raising=False)  # the default first, whatever this run asks for
    model = build_model("released")
    info = WeightsInfo("random", random=True)
    expected = "bf16" if cpu_bf16_native() else "fp32"
    assert Engine(model, info, device="cpu").precision == expected  # read off the CPU, not guessed
    monkeypatch.setenv("EXPLORER_PRECISION", "fp32")
    forced = Engine(model, info, device="cpu")
    assert forced.precision == "fp32" and forced.gpu_dtype == torch.float32
