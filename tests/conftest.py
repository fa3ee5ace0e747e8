"""Shared fixtures: the real network and real photographs from explorer/samples."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Hermetic: nothing leaves the machine, no developer's Hugging Face cache or EXPLORER_WEIGHTS changes
# what a test sees. Set before anything imports huggingface_hub, which reads them once; tests that
# exercise the Hub or the default weights set their own.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="explorer-hf-cache-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a closed port
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["EXPLORER_WEIGHTS"] = "random"
os.environ["EXPLORER_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="explorer-compiled-")
# Under pytest-xdist (make test: a worker per core, up to 4) each worker and what it starts runs one thread of
# torch: with a pool of threads each, two workers on two cores fought over them (1,158 s against 820 s in one
# process); with one each, 629 s against 959 s. Set before torch is imported, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch
from PIL import Image

from explorer.nets import InceptionResNet, build_model
from explorer.runtime import cpu_bf16_native, precision_allowed
from explorer.runtime.images import SAMPLES_DIR

SAMPLES = SAMPLES_DIR


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import ahead_build

    if ahead_build._build is not None:
        ahead_build._build.remove()
    for name in ("HF_HUB_CACHE", "EXPLORER_COMPILE_CACHE"):  # each pytest process made its own, above: not left
        shutil.rmtree(os.environ[name], ignore_errors=True)


#: What the CPU engine runs in by default here: bf16 where the CPU has it natively (and EXPLORER_PRECISION does
#: not ask for fp32), else fp32.
CPU_PRECISION = "bf16" if cpu_bf16_native() and precision_allowed() else "fp32"


def image_tensor(path: Path, size: int = 299) -> torch.Tensor:
    """A photograph as the tf_in1k weights expect it: RGB, resized, scaled to [-1, 1]. (1, 3, size, size)."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return (data.permute(2, 0, 1).float() / 127.5 - 1.0).unsqueeze(0)


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    paths = sorted(SAMPLES.glob("*.jpg"))
    assert len(paths) >= 6, "explorer/samples should hold the sample photographs"
    return paths


@pytest.fixture(scope="session")
def photos(sample_paths: list[Path]) -> torch.Tensor:
    """Three real photographs as one batch."""
    return torch.cat([image_tensor(p) for p in sample_paths[:3]])


@pytest.fixture(scope="session")
def released() -> InceptionResNet:
    return build_model("released")


def as_read(markdown: str) -> str:
    """A markdown text as people read it: explorer.text.usertext.shown's backslash escapes and word joiners undone."""
    import re

    from explorer.text.usertext import WORD_JOINER

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")
