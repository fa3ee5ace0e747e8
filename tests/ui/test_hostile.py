"""Bad input and hostile files: clear errors, nothing lost, nothing executed."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from explorer.nets import build_model, make_config
from explorer.nets.hub import HUB_FILENAME, HUB_REPOS, load_hub_weights
from explorer.nets.weights import WeightsError, load_weights_file
from explorer.runtime import Engine
from explorer.runtime.images import MAX_BYTES, ImageError, LoadedImage, load_image
from tests.hub_server import HubServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BYTES = [p.read_bytes() for p in sorted((ROOT / "explorer" / "samples").glob("*.jpg"))]
SMALL_PNG = io.BytesIO()
Image.open(ROOT / "explorer" / "samples" / "cat.jpg").resize((40, 27)).save(SMALL_PNG, "PNG")
SEEDS = [*SAMPLE_BYTES[:2], SMALL_PNG.getvalue()]
RELEASED = make_config("released")


# ------------------------------------------------------------------------------------ images


def test_upload_limit_and_xsrf_are_configured():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_BYTES
    assert config["server"]["enableXsrfProtection"] is True


def test_heic_gets_a_message_naming_the_formats_that_work():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(ImageError, match="HEIC") as caught:
        load_image(heic, "IMG_0001.HEIC")
    assert "JPEG, PNG" in str(caught.value)


def test_oversized_upload_is_refused_before_decoding():
    with pytest.raises(ImageError, match="larger than 25 MB"):
        load_image(b"\xff" * (MAX_BYTES + 1), "huge.jpg")


def decodes_or_says_why(data: bytes) -> None:
    try:
        result = load_image(data, "fuzz")
    except ImageError as error:
        assert str(error)
        return
    assert isinstance(result, LoadedImage) and result.image.mode == "RGB"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes(data):
    decodes_or_says_why(data)


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(("flip", "cut", "insert")))
        position = draw(st.integers(0, len(data) - 1))
        if action == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 512))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        if not data:
            break
    return bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_fuzz_mutated_real_images(data):
    decodes_or_says_why(data)


# ----------------------------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def good_state() -> dict[str, torch.Tensor]:
    return build_model("released", seed=9).state_dict()


def test_wrong_architecture_lists_what_is_wrong(tmp_path):
    path = tmp_path / "resnet50.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, str(path))
    with pytest.raises(WeightsError) as caught:
        load_weights_file(path, RELEASED)
    assert "unexpected conv1.weight" in caught.value.problems
    assert "missing conv2d_1a.conv.weight" in caught.value.problems
    assert "more" in str(caught.value)  # hundreds of problems are summarised, not dumped


def test_truncated_files_are_refused(tmp_path, good_state):
    path = tmp_path / "full.safetensors"
    save_file(good_state, str(path))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:5_000_000])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights_file(cut, RELEASED)
    pth = tmp_path / "full.pth"
    torch.save(good_state, pth)
    short = tmp_path / "cut.pth"
    short.write_bytes(pth.read_bytes()[:5_000_000])
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        load_weights_file(short, RELEASED)


def test_wrong_dtypes_and_non_finite_values(tmp_path, good_state):
    state = dict(good_state)
    state["conv2d_1a.conv.weight"] = state["conv2d_1a.conv.weight"].to(torch.int32)
    state["classif.bias"] = torch.full_like(state["classif.bias"], float("nan"))
    path = tmp_path / "odd.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as caught:
        load_weights_file(path, RELEASED)
    assert "conv2d_1a.conv.weight: dtype torch.int32, expected a floating-point tensor" in caught.value.problems
    assert "classif.bias: holds NaN or infinite values" in caught.value.problems


def test_cadene_background_head_is_explained(tmp_path, good_state):
    state = {k: v for k, v in good_state.items() if not k.startswith("classif")}
    state["last_linear.weight"] = torch.zeros(1001, 1536)
    state["last_linear.bias"] = torch.zeros(1001)
    path = tmp_path / "inceptionresnetv2-background.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="1001 classes") as caught:
        load_weights_file(path, RELEASED)
    assert "classif.weight: shape (1001, 1536), expected (1000, 1536)" in caught.value.problems


def test_corrupt_download_is_evicted_and_a_retry_works(tmp_path, good_state):
    good = tmp_path / "good.safetensors"
    save_file(good_state, str(good))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 1000)
    with HubServer() as hub:
        hub.add(HUB_REPOS["tf_in1k"], HUB_FILENAME, corrupt)
        cache = tmp_path / "cache"
        with pytest.raises(WeightsError, match="removed from the cache"):
            load_hub_weights(RELEASED, "tf_in1k", cache_dir=cache, endpoint=hub.endpoint)
        assert not list(cache.rglob(HUB_FILENAME))
        hub.add(HUB_REPOS["tf_in1k"], HUB_FILENAME, good)  # the mirror is fixed: try again
        model, _ = load_hub_weights(RELEASED, "tf_in1k", cache_dir=cache, endpoint=hub.endpoint)
    assert torch.equal(model.state_dict()["classif.weight"], good_state["classif.weight"])


# ---------------------------------------------------------------------------------------- GPU


def test_engine_falls_back_to_the_cpu_and_says_so():
    from explorer.nets.weights import random_weights

    model, info = random_weights(RELEASED)
    engine = Engine(model, info, device="cpu")
    engine.fall_back_to_cpu("the GPU ran out of memory")
    result = engine.run(Image.open(ROOT / "explorer" / "samples" / "cat.jpg").convert("RGB"))
    assert result.device == "cpu (fp32)"
    assert "the GPU ran out of memory: running on the CPU instead" in result.notes


def test_cpu_only_runs_never_start_cuda_or_compile():
    script = (
        "import sys, torch\n"
        "from explorer.runtime.images import load_image\n"
        "from explorer.runtime import Engine\n"
        "from explorer.nets import make_config\n"
        "from explorer.nets.weights import random_weights\n"
        "model, info = random_weights(make_config('released'))\n"
        "Engine(model, info, device='cpu').run(load_image('explorer/samples/cat.jpg').image)\n"
        "compiled = 0\n"
        "if 'torch._dynamo' in sys.modules:\n"
        "    compiled = sum(sys.modules['torch._dynamo'].utils.counters['frames'].values())\n"
        "print(torch.cuda.is_initialized(), compiled)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0"]  # CUDA never initialised, nothing compiled
