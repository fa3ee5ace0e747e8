"""Where the released network's weights come from: seeded random, a local file, or the Hub.

Files are read safely: ``.safetensors`` with safetensors, ``.pth`` / ``.pt`` / ``.bin`` with
``torch.load(weights_only=True)``, which refuses pickles that would run code. Both timm's naming
and Cadene's (``pretrainedmodels``: ``last_linear`` for the classifier) are accepted. Loading
builds a fresh model and only returns it when every key matches, so a failed load never touches
the model already in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from explorer.model import InceptionResNetConfig, InceptionResNetV2, model_from_config

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

#: The released network's ImageNet weights on the Hugging Face Hub (timm's ports of TF-slim's).
HUB_REPOS: Mapping[str, str] = {
    "tf_in1k": "timm/inception_resnet_v2.tf_in1k",
    "tf_ens_adv_in1k": "timm/inception_resnet_v2.tf_ens_adv_in1k",
}
HUB_FILENAME = "model.safetensors"


def weights_dir() -> Path:
    """Where the app looks for weights files on the server: ``weights/``, or EXPLORER_WEIGHTS_DIR."""
    return Path(os.environ.get("EXPLORER_WEIGHTS_DIR", "weights"))


class WeightsError(ValueError):
    """Weights that cannot be used; ``problems`` lists each one (by key where there is one)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        more = len(self.problems) - 6
        shown = "; ".join(self.problems[:6]) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"{message}: {shown}" if self.problems else message)


@dataclass(frozen=True)
class WeightsInfo:
    """What weights a model carries, in words for people."""

    source: str
    random: bool
    notes: tuple[str, ...] = ()


def random_weights(config: InceptionResNetConfig, seed: int = 0) -> tuple[InceptionResNetV2, WeightsInfo]:
    return model_from_config(config, seed=seed), WeightsInfo(f"random (seed {seed})", random=True)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a file, read without running any code the file might hold."""
    path = Path(path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(f"{path.name}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(f"{path.name} is not a readable safetensors file ({error})") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by cause
        reason = _load_failure(str(error)) or type(error).__name__
        if "GLOBAL" in reason:  # the pickle names a Python callable to run (wording varies by torch version)
            raise WeightsError(f"{path.name} was refused: it asks to call Python code when loaded ({reason})") from None
        raise WeightsError(f"{path.name} is not a readable PyTorch file ({reason})") from None
    return _unwrap(loaded, path.name)


def _load_failure(message: str) -> str:
    """The line of torch.load's long message that says what went wrong."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for marker in ("GLOBAL", "WeightsUnpickler error"):
        for index, line in enumerate(lines):
            if marker in line:
                detail = line.split("WeightsUnpickler error:")[-1].strip()
                return detail or (lines[index + 1] if index + 1 < len(lines) else line)
    return lines[0] if lines else ""


def _unwrap(loaded: object, name: str) -> dict[str, Tensor]:
    """Accept the usual checkpoint wrappers: {"state_dict": ...}, {"model": ...}, ``module.`` prefixes."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsError(f"{name} does not hold a state dict of tensors")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k.removeprefix("module."): v for k, v in loaded.items()}
    return dict(loaded)


def to_timm_names(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename Cadene's ``pretrainedmodels`` keys to timm's; the notes say what was renamed."""
    renamed = {_timm_name(k): v for k, v in state_dict.items()}
    notes = ["Cadene naming: last_linear renamed to classif"] if renamed.keys() != state_dict.keys() else []
    return renamed, notes


def _timm_name(key: str) -> str:
    return "classif" + key.removeprefix("last_linear") if key.startswith("last_linear.") else key


def check_state_dict(model: InceptionResNetV2, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Every way ``state_dict`` does not fit ``model``, one line per key."""
    expected = model.state_dict()
    problems = []
    for key in expected:
        if key not in state_dict:
            problems.append(f"missing {key}")
    for key, value in state_dict.items():
        if key not in expected:
            problems.append(f"unexpected {key}")
            continue
        want = expected[key]
        if tuple(value.shape) != tuple(want.shape):
            problems.append(f"{key}: shape {tuple(value.shape)}, expected {tuple(want.shape)}")
        elif want.is_floating_point() and not value.is_floating_point():
            problems.append(f"{key}: dtype {value.dtype}, expected a floating-point tensor")
        elif not want.is_floating_point() and value.is_floating_point():
            problems.append(f"{key}: dtype {value.dtype}, expected {want.dtype}")
        elif value.is_floating_point() and not torch.isfinite(value).all():
            problems.append(f"{key}: holds NaN or infinite values")
    if "classif.weight" in state_dict and state_dict["classif.weight"].shape[0] == 1001:
        problems.append("classif has 1001 classes (Cadene's 'imagenet+background' head); use the 1000-class file")
    return problems


def load_weights_file(path: str | Path, config: InceptionResNetConfig) -> tuple[InceptionResNetV2, WeightsInfo]:
    """A new model carrying the weights in ``path``, or :class:`WeightsError` listing what is wrong."""
    path = Path(path)
    state_dict, notes = to_timm_names(read_state_dict(path))
    model = InceptionResNetV2(config, device="meta")
    problems = check_state_dict(model, state_dict)
    if problems:
        raise WeightsError(f"{path.name} does not fit the {config.variant} network", problems)
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()}
    if dtypes != {torch.float32}:
        notes.append(f"stored as {', '.join(sorted(str(d).removeprefix('torch.') for d in dtypes))}; used as float32")
    model.load_state_dict(state_dict, strict=True, assign=True)  # takes the file's tensors: no random init
    model = model.float().eval()
    return model, WeightsInfo(f"file {path.name}", random=False, notes=tuple(notes))


def local_weight_files(directory: Path | None = None) -> list[Path]:
    """Weights files the server offers (in :func:`weights_dir` by default)."""
    directory = directory or weights_dir()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())


# --------------------------------------------------------------------------------------------
# The Hub
# --------------------------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


def download_hub_weights(
    tag: str = "tf_in1k",
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download (or find in the Hub cache) the released weights; the path of the cached file.

    The Hub is ``huggingface.co`` unless ``HF_ENDPOINT`` (or ``endpoint``) says otherwise; the file lands in the
    Hub cache (``HF_HUB_CACHE``, or ``cache_dir``), so a second call reads it from disk.
    Interrupted transfers are resumed by huggingface_hub; a download that still fails leaves only
    its ``.incomplete`` part file in the cache, never a broken weights file.
    """
    if tag not in HUB_REPOS:
        raise WeightsError(f"unknown weights {tag!r}; expected one of: {', '.join(HUB_REPOS)}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            HUB_REPOS[tag],
            HUB_FILENAME,
            cache_dir=cache_dir,
            endpoint=endpoint,
            tqdm_class=_progress_bar(progress) if progress else None,
        )
    except LocalEntryNotFoundError:
        raise WeightsError(
            f"cannot reach the Hugging Face Hub to download {HUB_REPOS[tag]} (offline?) and it is not in the cache; "
            f"download {HUB_FILENAME} elsewhere and put it in {weights_dir()}/"
        ) from None
    except Exception as error:
        # Transfers fail with the HTTP client's own errors (httpx or requests, by huggingface_hub version).
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"downloading {HUB_REPOS[tag]} failed ({first_line}); try again") from None
    return Path(path)


def _progress_bar(callback: Progress) -> type:
    from tqdm.auto import tqdm

    class CallbackBar(tqdm):  # huggingface_hub draws with the tqdm class it is given
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            callback(int(self.n), int(self.total or 0))
            return shown

    return CallbackBar


def load_hub_weights(
    config: InceptionResNetConfig,
    tag: str = "tf_in1k",
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> tuple[InceptionResNetV2, WeightsInfo]:
    path = download_hub_weights(tag, progress, cache_dir, endpoint)
    try:
        model, info = load_weights_file(path, config)
    except WeightsError as error:
        _evict(path)  # a corrupt download must not stay in the cache as if it were good
        raise WeightsError(
            f"the downloaded {HUB_FILENAME} is unusable and was removed from the cache ({error}); try again"
        ) from None
    return model, WeightsInfo(f"{HUB_REPOS[tag]} (Hugging Face Hub)", random=False, notes=info.notes)


def _evict(path: Path) -> None:
    """Remove a cached Hub file: the snapshot link and the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
