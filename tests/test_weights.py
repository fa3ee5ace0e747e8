"""Weights: local files in timm's and Cadene's naming, safe loading, and the Hub download path."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from explorer.model import build_model, make_config
from explorer.weights import (
    HUB_FILENAME,
    HUB_REPOS,
    WeightsError,
    download_hub_weights,
    load_hub_weights,
    load_weights_file,
    random_weights,
)
from tests.hub_server import HubServer

RELEASED = make_config("released")


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    """A state dict unlike the default seed's: what a real checkpoint would carry."""
    return {k: v.clone() for k, v in build_model("released", seed=11).state_dict().items()}


@pytest.fixture(scope="module")
def safetensors_file(tmp_path_factory, reference_state) -> Path:
    path = tmp_path_factory.mktemp("weights") / HUB_FILENAME
    save_file(reference_state, str(path))
    return path


def same_weights(model, state) -> bool:
    ours = model.state_dict()
    return all(torch.equal(ours[k].cpu(), v) for k, v in state.items())


def test_random_weights_are_labelled_random():
    model, info = random_weights(RELEASED)
    assert info.random and "random" in info.source
    assert same_weights(model, build_model("released", seed=0).state_dict())


def test_timm_named_safetensors_and_pth_load(safetensors_file, reference_state, tmp_path):
    model, info = load_weights_file(safetensors_file, RELEASED)
    assert not info.random and same_weights(model, reference_state)
    pth = tmp_path / "timm.pth"
    torch.save({"state_dict": reference_state}, pth)
    model, _ = load_weights_file(pth, RELEASED)
    assert same_weights(model, reference_state)


def test_timm_checkpoint_from_timm_itself_loads(tmp_path):
    timm = pytest.importorskip("timm")
    reference = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    path = tmp_path / "from_timm.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model, _ = load_weights_file(path, RELEASED)
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() <= 1e-4


def test_cadene_named_file_loads(reference_state, tmp_path):
    cadene = {
        ("last_linear" + k.removeprefix("classif") if k.startswith("classif") else k): v
        for k, v in reference_state.items()
    }
    path = tmp_path / "inceptionresnetv2-520b38e4.pth"
    torch.save(cadene, path)
    model, info = load_weights_file(path, RELEASED)
    assert same_weights(model, reference_state)
    assert any("Cadene" in note for note in info.notes)


def test_half_precision_file_is_used_as_float32(reference_state, tmp_path):
    path = tmp_path / "half.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in reference_state.items()}, str(path))
    model, info = load_weights_file(path, RELEASED)
    assert next(model.parameters()).dtype == torch.float32
    assert any("float16" in note for note in info.notes)


def test_mismatches_are_reported_by_key(reference_state, tmp_path):
    broken = dict(reference_state)
    del broken["repeat.3.conv2d.bias"]
    broken["classif.weight"] = torch.zeros(10, 1536)
    broken["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.safetensors"
    save_file(broken, str(path))
    with pytest.raises(WeightsError) as caught:
        load_weights_file(path, RELEASED)
    problems = caught.value.problems
    assert "missing repeat.3.conv2d.bias" in problems
    assert "unexpected extra.weight" in problems
    assert "classif.weight: shape (10, 1536), expected (1000, 1536)" in problems
    with pytest.raises(WeightsError, match="does not fit the paper-v2 network"):
        load_weights_file(path, make_config("paper-v2"))


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/explorer-pwned",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv2d_1a.conv.weight": RunsCode()}, path)  # a checkpoint as torch.save writes it
    with pytest.raises(WeightsError, match="refused: it asks to call Python code") as caught:
        load_weights_file(path, RELEASED)
    assert "system" in str(caught.value)
    raw = tmp_path / "evil_raw.pth"
    with raw.open("wb") as file:
        pickle.dump({"conv2d_1a.conv.weight": RunsCode()}, file)
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        load_weights_file(raw, RELEASED)
    assert not Path("/tmp/explorer-pwned").exists()


def test_not_a_weights_file(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(WeightsError):
        load_weights_file(text, RELEASED)
    with pytest.raises(WeightsError, match="expected one of"):
        load_weights_file(tmp_path / "weights.onnx", RELEASED)
    with pytest.raises(WeightsError, match="no such file"):
        load_weights_file(tmp_path / "absent.safetensors", RELEASED)


# ----------------------------------------------------------------------------------- the Hub


@pytest.fixture
def hub(safetensors_file):
    with HubServer() as server:
        server.add(HUB_REPOS["tf_in1k"], HUB_FILENAME, safetensors_file)
        yield server


def test_hub_download_with_progress_and_cache(hub, tmp_path, reference_state, safetensors_file):
    seen: list[tuple[int, int]] = []
    path = download_hub_weights(
        "tf_in1k", progress=lambda d, t: seen.append((d, t)), cache_dir=tmp_path, endpoint=hub.endpoint
    )
    assert path.read_bytes() == safetensors_file.read_bytes()
    assert seen and seen[-1][0] == seen[-1][1] == safetensors_file.stat().st_size
    gets = [r for r in hub.state.requests if r.startswith("GET")]
    assert len(gets) == 1
    again = download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert again == path and len([r for r in hub.state.requests if r.startswith("GET")]) == 1  # from the cache
    model, info = load_hub_weights(RELEASED, "tf_in1k", cache_dir=tmp_path)  # the env's endpoint: cache only
    assert same_weights(model, reference_state) and "Hugging Face Hub" in info.source


def test_interrupted_download_resumes(hub, tmp_path, safetensors_file):
    hub.state.cut_after, hub.state.cuts_left = 25_000_000, 1  # past two 10 MB chunks
    path = download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert path.read_bytes() == safetensors_file.read_bytes()
    ranges = [r for r in hub.state.requests if r.startswith("GET") and "bytes=" in r]
    assert ranges, "the second request should resume with a Range header"


def test_failing_download_leaves_no_broken_file_and_a_retry_works(hub, tmp_path, safetensors_file):
    hub.state.cut_after, hub.state.cuts_left = 1_000_000, 100
    with pytest.raises(WeightsError, match="failed"):
        download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=hub.endpoint)
    finished = [p for p in tmp_path.rglob(HUB_FILENAME)]
    assert finished == []  # only an .incomplete part file may remain
    hub.state.cuts_left = 0
    path = download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert path.read_bytes() == safetensors_file.read_bytes()


def test_offline_gives_a_clear_message(tmp_path):
    with pytest.raises(WeightsError, match="cannot reach the Hugging Face Hub"):
        download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint="http://127.0.0.1:9")
    with pytest.raises(WeightsError, match="unknown weights"):
        download_hub_weights("imagenet22k", cache_dir=tmp_path)


def test_cli_downloads_through_hf_endpoint(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache")}
    sample = Path(__file__).resolve().parent.parent / "assets" / "samples" / "cat.jpg"
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "infer", str(sample), "--weights", "hub", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert '"weights": "timm/inception_resnet_v2.tf_in1k (Hugging Face Hub)"' in result.stdout
    assert list((tmp_path / "cache").rglob(HUB_FILENAME))
