"""Where an engine runs and in what precision: the device, the CPU's bf16 support, the float32 switch; model sizes."""

from __future__ import annotations

import os

import torch


def pick_device(preference: str = "auto") -> tuple[torch.device, str | None]:
    """The device to run on, and a note when the preference could not be met."""
    if preference == "cpu":
        return torch.device("cpu"), None
    if preference not in ("auto", "cuda"):
        raise ValueError(f"unknown device {preference!r}; expected auto, cpu or cuda")
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    return torch.device("cpu"), ("CUDA is not available here: running on the CPU" if preference == "cuda" else None)


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), as torch's CPU checks read it."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def cpu_dtype_here() -> torch.dtype:
    """bf16 on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, read off the CPU), where bf16 weights
    channels-last run the forward in about half the time of float32; float32 elsewhere, or when asked for."""
    return torch.bfloat16 if cpu_bf16_native() and precision_allowed() else torch.float32


def precision_allowed() -> bool:
    """Reduced precision unless ``EXPLORER_PRECISION=fp32`` asks for float32 everywhere."""
    return os.environ.get("EXPLORER_PRECISION", "auto").lower() != "fp32"


def tensor_bytes(*modules: torch.nn.Module | None) -> int:
    """The bytes the parameters and buffers of some modules hold, each storage counted once."""
    seen: dict[int, int] = {}
    for module in modules:
        if module is None:
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())
