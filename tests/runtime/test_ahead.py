"""The pipeline compiled ahead of time in a child process (explorer.runtime.ahead), on the CPU: the GPU
server's code path with AOTInductor's C++ backend. (On the GPU: benchmarks/serving_gpu.py on the device.)"""

from __future__ import annotations

import shutil

import pytest
import torch

from explorer.runtime.ahead import load_steps
from explorer.runtime.builds import BuildError, Request, ensure_built
from explorer.runtime.images import load_image
from explorer.runtime.pipeline import pipeline
from explorer.runtime.preprocessing import crop_for_network, to_tensor
from tests import ahead_build
from tests.ahead_build import SIZE, network


@pytest.fixture(scope="module")
def built():
    build = ahead_build.current()
    folder, fresh = build.result()
    model = network(seed=7)  # not the build's own weights (seed 0): the packages must read the engine's
    return model, build.request, build.root, folder, fresh


def test_the_compiled_steps_give_the_eager_pipelines_rows(built, sample_paths):
    model, request, _, folder, fresh = built
    assert fresh and (folder / "manifest.json").exists()
    steps = load_steps(folder, model, request)
    with torch.inference_mode():
        for path in sample_paths:
            crop = crop_for_network(load_image(path).image).resize((SIZE, SIZE))
            x = to_tensor(crop).contiguous(memory_format=torch.channels_last)
            eager, layout = pipeline(model, x, 8)
            compiled, same_layout = pipeline(model, x, 8, steps)
            assert same_layout == layout
            torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4 * float(eager.abs().max()))
            assert torch.equal(compiled[0, 5:10], eager[0, 5:10]), path.name  # the top-5 classes


def test_a_finished_build_is_found_and_other_settings_get_their_own(built):
    model, request, root, folder, _ = built
    again, fresh = ensure_built(request, root)
    assert again == folder and not fresh
    other = Request(model.config, "cpu", 2, 8, SIZE, "fp32")
    assert other.folder(root) != folder and "b2" in other.folder(root).name
    assert Request(model.config, "cpu", 1, 4, SIZE, "fp32").folder(root) != folder


def test_a_build_that_fails_says_why_and_leaves_nothing(tmp_path):
    model = network(seed=0)
    request = Request(model.config, "cpu", 1, 8, 20, "fp32")  # too small an input for the stem's strides
    with pytest.raises(BuildError, match=r"too small|size") as failure:
        ensure_built(request, tmp_path)
    name = request.folder(tmp_path).name
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "inductor-ahead")  # the compiler's own cache
    assert left == [f"{name}.failed", f"{name}.lock"]  # no build folder, whole or half
    with pytest.raises(BuildError, match=r"an earlier build; delete .* to try again") as again:
        ensure_built(request, tmp_path)  # not tried again: it would fail again, minutes later on a GPU
    assert str(failure.value) in str(again.value)


def test_a_damaged_or_foreign_build_is_refused(built, tmp_path):
    model, request, _, folder, _ = built
    damaged = tmp_path / folder.name
    shutil.copytree(folder, damaged)
    (damaged / "head.pt2").write_bytes((folder / "head.pt2").read_bytes()[:1000])
    with pytest.raises(BuildError, match=r"head\.pt2 in .* does not load"):
        load_steps(damaged, model, request)
    other = network(seed=0, repeats=(2, 1, 1))
    with pytest.raises(BuildError, match="does not match this network"):
        load_steps(folder, other, request)
