"""Weights: local files in timm's and Cadene's naming, safe loading, and the Hub download path."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from explorer.nets import build_model, make_config
from explorer.nets.hub import HUB_FILENAME, HUB_REPOS, HUB_TIMEOUT, download_hub_weights, load_hub_weights
from explorer.nets.weights import WeightsError, load_weights_file, random_weights
from explorer.runtime.images import SAMPLES_DIR
from tests.cli import explorer
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
    # A 10-row classifier is a 10-class head (a fine-tune); its bias of 1000 then does not fit it.
    assert "classif.bias: shape (1000,), expected (10,)" in problems
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
    left = [p.name for p in tmp_path.rglob("*") if p.is_file() and (p.name == HUB_FILENAME or "incomplete" in p.name)]
    assert left == []  # neither a broken weights file nor a part file
    hub.state.cuts_left = 0
    path = download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=hub.endpoint)
    assert path.read_bytes() == safetensors_file.read_bytes()


def test_offline_gives_a_clear_message_without_retrying(tmp_path):
    """A refused connection is reported as refused, and a silent Hub as timed out after one connection: no retries
    with backoff (huggingface_hub's own default) keep a server waiting. Said by the cause, not by a stopwatch."""
    with pytest.raises(WeightsError, match=r"cannot reach the Hugging Face Hub at http://127\.0\.0\.1:9 ") as caught:
        download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint="http://127.0.0.1:9")  # refused at once
    assert "Connection refused" in str(caught.value) and "irv2-explorer weights fetch tf_in1k" in str(caught.value)
    with socket.socket() as silent:  # accepts connections, never answers: a network that drops packets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(0)
        start = time.monotonic()
        with pytest.raises(WeightsError, match=r"cannot reach the Hugging Face Hub .*\(timed out\)"):
            download_hub_weights("tf_in1k", cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}")
        waited = time.monotonic() - start
        connections = []
        with contextlib.suppress(BlockingIOError):
            while True:
                connections.append(silent.accept()[0])
        for connection in connections:
            connection.close()
        assert len(connections) == 1, f"{len(connections)} connections: the request was retried"
        assert waited >= HUB_TIMEOUT  # it was the client's own timeout that gave up, HUB_TIMEOUT not another
    with pytest.raises(WeightsError, match="unknown weights"):
        download_hub_weights("imagenet22k", cache_dir=tmp_path)


def test_cli_downloads_through_hf_endpoint(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache")}
    sample = SAMPLES_DIR / "cat.jpg"
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


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command in a process of its own: huggingface_hub reads HF_ENDPOINT once, as it is imported, and a
    first warning shows only in a fresh process. The rest go through ``tests.cli.explorer`` in this one."""
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_cli_weights_fetch_list_and_infer_auto(hub, tmp_path, safetensors_file):
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache"), "EXPLORER_WEIGHTS_DIR": str(tmp_path)}
    sample = str(SAMPLES_DIR / "cat.jpg")
    before = cli("infer", sample, "--format", "json", env=env)  # --weights auto, nothing cached: random, no download
    assert before.returncode == 0 and '"weights": "random (seed 0)"' in before.stdout
    assert "note: random weights" in before.stderr and hub.state.requests == []
    listed = json.loads(cli("weights", "list", "--format", "json", env=env).stdout)
    assert listed[0] == {
        "weights": "hub:tf_in1k",
        "source": HUB_REPOS["tf_in1k"],
        "cached": False,
        "bytes": safetensors_file.stat().st_size,  # asked of the Hub
    }
    assert not listed[1]["cached"] and "error" in listed[1]  # the local Hub serves only tf_in1k
    fetched = cli("weights", "fetch", env=env)
    assert fetched.returncode == 0 and fetched.stdout.startswith("hub:tf_in1k: downloaded, 224 MB, "), fetched
    again = cli("weights", "fetch", "tf_in1k", env=env)
    assert again.stdout.startswith("hub:tf_in1k: already in the Hugging Face cache")
    listed = json.loads(cli("weights", "list", "--format", "json", "--offline", env=env).stdout)
    assert listed[0]["cached"] and Path(listed[0]["path"]).read_bytes() == safetensors_file.read_bytes()
    after = cli("infer", sample, "--format", "json", env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert '"weights": "timm/inception_resnet_v2.tf_in1k (Hugging Face Hub)"' in after.stdout, after.stderr
    assert "note: random" not in after.stderr


def test_cli_weights_check_and_bad_input(safetensors_file, reference_state, tmp_path):
    good = explorer("weights", "check", str(safetensors_file))
    assert good.returncode == 0
    assert good.stdout.splitlines() == [
        f"{safetensors_file} fits the released network",
        "head: 1000 classes (ImageNet's)",
    ]
    broken = dict(reference_state)
    del broken["conv2d_7b.conv.weight"]
    save_file(broken, str(tmp_path / "broken.safetensors"))
    bad = explorer("weights", "check", str(tmp_path / "broken.safetensors"))
    assert bad.returncode == 1 and "missing conv2d_7b.conv.weight" in bad.stderr
    other = explorer("weights", "check", str(safetensors_file), "--variant", "paper-v2")
    assert other.returncode == 1 and "does not fit the paper-v2 network" in other.stderr
    offline = cli("weights", "fetch", env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path / "c")})
    assert offline.returncode == 2 and offline.stderr.startswith("error: cannot reach the Hugging Face Hub")
    assert offline.stderr.count("\n") == 1 and "Connection refused" in offline.stderr  # refused: no retries
    for args, says in [
        (("weights", "fetch", "imagenet22k"), "error: unknown weights 'imagenet22k'"),
        (("infer", str(SAMPLES_DIR / "cat.jpg"), "--weights", "hub:nope"), "error: unknown weights 'nope'"),
        (("app", "--port", "http"), "'http' is not a port number"),
    ]:
        done = explorer(*args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)


def test_cli_help_keeps_its_usage_lines():
    usage = explorer("--help").stdout
    assert "\n  irv2-explorer infer IMAGE... [--variant V] [--weights auto|random|hub[:TAG]|FILE]" in usage
    assert "\n  irv2-explorer weights fetch [TAG] | weights list [--offline] | weights check FILE" in usage


def test_inception_v4_weights_from_the_hub_load_strictly_and_give_timms_logits(tmp_path, photos):
    """timm's inception_v4 state dict, served as timm/inception_v4.tf_in1k, loads by its tag into our v4;
    the released network's tag is refused for it, with a message."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from explorer.nets import INCEPTION_V4
    from explorer.nets.hub import hub_tags_for

    peer = timm.create_model("inception_v4", pretrained=False).eval()
    with torch.no_grad():
        for module in peer.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    served = tmp_path / "v4.safetensors"
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(served))
    assert hub_tags_for("inception-v4") == ["inception_v4.tf_in1k"]
    with HubServer() as server:
        server.add(HUB_REPOS["inception_v4.tf_in1k"], HUB_FILENAME, served)
        download_hub_weights("inception_v4.tf_in1k", cache_dir=tmp_path / "cache", endpoint=server.endpoint)
    model, info = load_hub_weights(INCEPTION_V4, "inception_v4.tf_in1k", cache_dir=tmp_path / "cache")
    assert "timm/inception_v4.tf_in1k" in info.source and not info.notes  # last_linear stays last_linear
    with torch.no_grad():
        assert (model(photos) - peer(photos)).abs().max().item() <= 1e-4
    with pytest.raises(WeightsError, match="holds the released network's weights"):
        load_hub_weights(INCEPTION_V4, "tf_in1k", cache_dir=tmp_path / "cache")


def test_cli_a_plain_pickle_is_one_line_with_no_warning_before_it(tmp_path):
    import pickle

    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"conv2d_1a.conv.weight": [1.0]}, protocol=4))
    done = cli("infer", str(SAMPLES_DIR / "cat.jpg"), "--weights", str(tmp_path / "plain.pth"), "--device", "cpu")
    assert done.returncode != 0
    # torch warns about pickle protocol 4 before refusing the file: only the refusal is shown
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith("error: plain.pth is not a")
