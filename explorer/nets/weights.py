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

from explorer.nets.build import model_from_config
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

#: ImageNet weights on the Hugging Face Hub (timm's ports of TF-slim's): the released Inception-ResNet-v2's,
#: and Inception-v4's under its timm name.
HUB_REPOS: Mapping[str, str] = {
    "tf_in1k": "timm/inception_resnet_v2.tf_in1k",
    "tf_ens_adv_in1k": "timm/inception_resnet_v2.tf_ens_adv_in1k",
    "inception_v4.tf_in1k": "timm/inception_v4.tf_in1k",
}
#: The network each Hub tag's weights fit.
HUB_VARIANTS: Mapping[str, str] = {
    "tf_in1k": "released",
    "tf_ens_adv_in1k": "released",
    "inception_v4.tf_in1k": "inception-v4",
}


def hub_tags_for(variant: str) -> list[str]:
    """The Hub weights that fit a variant (none for the paper's variants, which were never trained in public)."""
    return [tag for tag, fits in HUB_VARIANTS.items() if fits == variant]


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
    #: What tells these weights from any others, for keys of caches: :func:`weights_identity` of their key.
    identity: str = ""


def random_weights(config: NetworkConfig, seed: int = 0) -> tuple[InceptionNetwork, WeightsInfo]:
    return model_from_config(config, seed=seed), WeightsInfo(
        f"random (seed {seed})", random=True, identity=f"{RANDOM}:{seed}"
    )


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


def to_timm_names(state_dict: Mapping[str, Tensor], residual: bool = True) -> tuple[dict[str, Tensor], list[str]]:
    """Rename Cadene's ``pretrainedmodels`` keys to timm's; the notes say what was renamed.

    Only Inception-ResNet-v2's classifier was renamed (``classif`` in timm); timm's Inception-v4 keeps
    ``last_linear``.
    """
    if not residual:
        return dict(state_dict), []
    renamed = {_timm_name(k): v for k, v in state_dict.items()}
    notes = ["Cadene naming: last_linear renamed to classif"] if renamed.keys() != state_dict.keys() else []
    return renamed, notes


def _timm_name(key: str) -> str:
    return "classif" + key.removeprefix("last_linear") if key.startswith("last_linear.") else key


def check_state_dict(model: InceptionNetwork, state_dict: Mapping[str, Tensor]) -> list[str]:
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
    for head in ("classif", "last_linear"):
        if f"{head}.weight" in state_dict and state_dict[f"{head}.weight"].shape[0] == 1001:
            problems.append(f"{head} has 1001 classes (Cadene's 'imagenet+background' head); use the 1000-class file")
    return problems


def load_weights_file(path: str | Path, config: NetworkConfig) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new model carrying the weights in ``path``, or :class:`WeightsError` listing what is wrong."""
    path = Path(path)
    state_dict, notes = to_timm_names(read_state_dict(path), config.residual)
    model = model_from_config(config, seed=None, device="meta")
    problems = check_state_dict(model, state_dict)
    if problems:
        raise WeightsError(f"{path.name} does not fit the {config.variant} network", problems)
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()}
    if dtypes != {torch.float32}:
        notes.append(f"stored as {', '.join(sorted(str(d).removeprefix('torch.') for d in dtypes))}; used as float32")
    model.load_state_dict(state_dict, strict=True, assign=True)  # takes the file's tensors: no random init
    model = model.float().eval()
    return model, WeightsInfo(f"file {path.name}", random=False, notes=tuple(notes), identity=_file_identity(path))


def _file_identity(path: Path) -> str:
    """A file by where it is and what it is now: replaced by another file of the same name, it is other weights."""
    try:
        found = path.resolve().stat()
    except OSError:
        return f"file:{path}"
    return f"file:{path.resolve()}:{found.st_size}:{found.st_mtime_ns}"


def weights_identity(key: str) -> str:
    """The identity of the weights a key names, as :class:`WeightsInfo` records it once they are loaded;
    cheap (no file is read), so that a cache can be looked up by it on every page run."""
    kind, _, name = parse_weights_key(key).partition(":")
    if kind == "file":
        return _file_identity(weights_dir() / name)
    if kind == "hub":
        return f"hub:{name}"
    return f"{RANDOM}:0"


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

#: Seconds to wait for the Hub's first answer, asked once: offline is decided in seconds, not after
#: huggingface_hub's half a minute of retries.
HUB_TIMEOUT = 4.0


def hub_page(tag: str) -> str:
    return f"https://huggingface.co/{_repo(tag)}"


def offline_help(tag: str = "tf_in1k") -> str:
    """How to get the weights onto a machine that cannot reach the Hub, in one sentence."""
    return (
        f"to use them without a network, run `irv2-explorer weights fetch {tag}` on a machine that has one and "
        f"copy its Hugging Face cache ({hub_cache_dir()}) here, or save {HUB_FILENAME} from {hub_page(tag)} "
        f"into {weights_dir()}/ and pick it in the Weights box (or start with EXPLORER_WEIGHTS=file:{HUB_FILENAME})"
    )


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo(tag: str) -> str:
    if tag not in HUB_REPOS:
        raise WeightsError(f"unknown weights {tag!r}; expected one of: {', '.join(HUB_REPOS)}")
    return HUB_REPOS[tag]


def cached_hub_weights(tag: str = "tf_in1k", cache_dir: str | Path | None = None) -> Path | None:
    """The released weights' file if the Hugging Face cache holds it; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(_repo(tag), HUB_FILENAME, cache_dir=cache_dir)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_file_size(tag: str = "tf_in1k", endpoint: str | None = None, timeout: float = HUB_TIMEOUT) -> int:
    """The weights file's size in bytes as the Hub reports it: one request, no retries.

    Also the check that the Hub answers at all: :class:`WeightsError` within ``timeout`` seconds
    when it does not (offline, a closed port, HF_HUB_OFFLINE set).
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    repo = _repo(tag)
    if constants.HF_HUB_OFFLINE:
        raise WeightsError(f"HF_HUB_OFFLINE is set and {repo} is not in the Hugging Face cache; {offline_help(tag)}")
    url = hf_hub_url(repo, HUB_FILENAME, endpoint=endpoint)
    where = "/".join(url.split("/")[:3])
    try:
        metadata = get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except Exception as error:  # the HTTP client's own errors: DNS, refused, timeout, HTTP status
        raise WeightsError(
            f"cannot reach the Hugging Face Hub at {where} ({_first_line(error)}) and {repo} is not in the cache; "
            f"{offline_help(tag)}"
        ) from None
    return metadata.size or 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def download_hub_weights(
    tag: str = "tf_in1k",
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """The released weights' file from the Hugging Face cache, downloading it first if it is not there.

    A cached file is used without touching the network (timm's weights files never change). The
    Hub is ``huggingface.co`` unless ``HF_ENDPOINT`` (or ``endpoint``) says otherwise; the file
    lands in the Hub cache (``HF_HUB_CACHE``, or ``cache_dir``). An unreachable Hub is reported
    within :data:`HUB_TIMEOUT`; a transfer that breaks off is resumed by huggingface_hub, and one
    that still fails leaves no part of the file in the cache.
    """
    repo = _repo(tag)
    cached = cached_hub_weights(tag, cache_dir)
    if cached is not None:
        return cached
    size = hub_file_size(tag, endpoint)  # fails fast, instead of huggingface_hub's retries with backoff
    if progress:
        progress(0, size)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            repo,
            HUB_FILENAME,
            cache_dir=cache_dir,
            endpoint=endpoint,
            tqdm_class=_progress_bar(progress) if progress else None,
        )
    except LocalEntryNotFoundError:  # the Hub went away between the first answer and the download
        raise WeightsError(f"lost the Hugging Face Hub while downloading {repo}; {offline_help(tag)}") from None
    except Exception as error:
        # Transfers fail with the HTTP client's own errors (httpx or requests, by huggingface_hub version).
        raise WeightsError(f"downloading {repo} failed ({_first_line(error)}); try again") from None
    return Path(path)


def _progress_bar(callback: Progress) -> type:
    from tqdm.auto import tqdm

    class CallbackBar(tqdm):  # huggingface_hub counts bytes with the tqdm class it is given
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = False  # counts even where huggingface_hub's bars are turned off...
            kwargs["file"] = _Silent()  # ...and draws nothing: the callback shows the progress
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            callback(int(self.n), int(self.total or 0))
            return shown

    return CallbackBar


class _Silent:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def load_hub_weights(
    config: NetworkConfig,
    tag: str = "tf_in1k",
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> tuple[InceptionNetwork, WeightsInfo]:
    fits = HUB_VARIANTS.get(tag)
    if fits is not None and fits != config.variant:
        raise WeightsError(f"hub:{tag} holds the {fits} network's weights, not {config.variant}'s")
    path = download_hub_weights(tag, progress, cache_dir, endpoint)
    try:
        model, info = load_weights_file(path, config)
    except WeightsError as error:
        _evict(path)  # a corrupt download must not stay in the cache as if it were good
        raise WeightsError(
            f"the downloaded {HUB_FILENAME} is unusable and was removed from the cache ({error}); try again"
        ) from None
    return model, WeightsInfo(f"{_repo(tag)} (Hugging Face Hub)", random=False, notes=info.notes, identity=f"hub:{tag}")


def _evict(path: Path) -> None:
    """Remove a cached Hub file: the snapshot link and the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Weights by name: what EXPLORER_WEIGHTS, the Weights box and the CLI say
# --------------------------------------------------------------------------------------------

RANDOM = "random"
AUTO = "auto"
DEFAULT_TAG = "tf_in1k"


def parse_weights_key(value: str) -> str:
    """``auto``, ``random``, ``hub[:TAG]`` or ``file:NAME`` in canonical form, or :class:`WeightsError`."""
    text = value.strip()
    if text in (AUTO, RANDOM):
        return text
    kind, colon, name = text.partition(":")
    if kind == "hub":
        tag = name or DEFAULT_TAG
        _repo(tag)  # refuses unknown tags
        return f"hub:{tag}"
    if kind == "file" and colon and name:
        if Path(name).name != name or name in (".", ".."):
            raise WeightsError(f"file:{name}: give a file name inside {weights_dir()}/, not a path")
        if Path(name).suffix not in WEIGHT_SUFFIXES:
            raise WeightsError(f"file:{name}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
        return f"file:{name}"
    raise WeightsError(
        f"unknown weights {value!r}; expected auto, random, hub:TAG ({', '.join(HUB_REPOS)}) or file:NAME"
    )


def load_weights(
    key: str, config: NetworkConfig, progress: Progress | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new model with the weights a key names: ``random``, ``hub:TAG`` or ``file:NAME`` (in :func:`weights_dir`)."""
    kind, _, name = parse_weights_key(key).partition(":")
    if kind == "hub":
        return load_hub_weights(config, name, progress)
    if kind == "file":
        return load_weights_file(weights_dir() / name, config)
    if kind == AUTO:
        raise WeightsError("auto is resolved by the server or the CLI, not loaded")
    return random_weights(config)
