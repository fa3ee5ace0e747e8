"""Where the released network's weights come from: seeded random, a local file, or the Hub.

Files are read safely: ``.safetensors`` with safetensors, ``.pth`` / ``.pt`` / ``.bin`` with
``torch.load(weights_only=True)``, which refuses pickles that would run code. Both timm's naming
and Cadene's (``pretrainedmodels``: ``last_linear`` for the classifier) are accepted. Loading
builds a fresh model and only returns it when every key matches, so a failed load never touches
the model already in use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from explorer.nets.build import model_from_config
from explorer.nets.heads import LabelsError, class_names, head_classes, names_from
from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig

#: The files a weights folder offers (``.keras``: Keras' InceptionResNetV2, converted by explorer.nets.keras.convert).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".keras", ".h5")

#: The weights key of seeded random weights.
RANDOM = "random"

#: The folder of the weights folder where sessions keep what they made (a new head's checkpoint): one folder a
#: session, named by its id, or ``shared`` where the server lists them to everyone.
SESSION_FILES = "new-heads"
SESSION_FILE = re.compile(rf"{SESSION_FILES}/(shared|[0-9a-f-]{{8,64}})/[^/\\]+")


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
    #: The head's class names when the checkpoint or a labels file gives them (explorer.nets.heads).
    class_names: tuple[str, ...] | None = None


def random_weights(config: NetworkConfig, seed: int = 0) -> tuple[InceptionNetwork, WeightsInfo]:
    return model_from_config(config, seed=seed), WeightsInfo(
        f"random (seed {seed})", random=True, identity=f"{RANDOM}:{seed}"
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a file, read without running any code the file might hold."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], tuple[str, ...] | None]:
    """A file's state dict and the class names it carries (``class_names``), read without running its code."""
    path = Path(path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(f"{path.name}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), "pt") as opened:
                metadata = opened.metadata() or {}
            names = metadata.get("class_names")
            embedded = names_from(json.loads(names), path.name) if names is not None else None
            return load_file(str(path), device="cpu"), embedded
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(f"{path.name} is not a readable safetensors file ({error})") from None
    try:
        with warnings.catch_warnings():  # torch's warnings about a pickle it then refuses would come first
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by cause
        reason = _load_failure(str(error)) or type(error).__name__
        if "GLOBAL" in reason:  # the pickle names a Python callable to run (wording varies by torch version)
            raise WeightsError(f"{path.name} was refused: it asks to call Python code when loaded ({reason})") from None
        raise WeightsError(f"{path.name} is not a readable PyTorch file ({reason})") from None
    names = loaded.get("class_names") if isinstance(loaded, dict) else None
    embedded = names_from(names, path.name) if names is not None else None
    return _unwrap({k: v for k, v in loaded.items() if k != "class_names"} if names else loaded, path.name), embedded


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


def load_weights_file(
    path: str | Path, config: NetworkConfig, labels: str | Path | None = None
) -> tuple[InceptionNetwork, WeightsInfo]:
    """A new model carrying the weights in ``path``, or :class:`WeightsError` listing what is wrong.

    A head of another number of classes (a fine-tuned network) builds the network with that many; the class
    names come from the file, ``labels`` or a labels file beside it (:mod:`explorer.nets.heads`).
    """
    path = Path(path)
    read, embedded = read_checkpoint(path)
    state_dict, notes = to_timm_names(read, config.residual)
    classes = head_classes(state_dict)
    if classes is not None and classes not in (config.num_classes, 1001):  # 1001: refused below, with why
        config = dataclasses.replace(config, num_classes=classes)
        notes.append(f"a head of {classes} classes (the network is built with it)")
    try:
        names, names_file, labels_note = class_names(path, config.num_classes, embedded, labels)
    except LabelsError as error:
        raise WeightsError(str(error)) from None
    if labels_note:
        notes.append(labels_note)
    model = model_from_config(config, seed=None, device="meta")
    problems = check_state_dict(model, state_dict)
    if problems:
        raise WeightsError(f"{path.name} does not fit the {config.variant} network", problems)
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()}
    if dtypes != {torch.float32}:
        notes.append(f"stored as {', '.join(sorted(str(d).removeprefix('torch.') for d in dtypes))}; used as float32")
    model.load_state_dict(state_dict, strict=True, assign=True)  # takes the file's tensors: no random init
    model = model.float().eval()
    identity = file_identity(path) + (f"|labels {file_identity(names_file)}" if names_file is not None else "")
    if names is not None:
        notes.append(f"class names from {names_file.name if names_file is not None else path.name}")
    return model, WeightsInfo(f"file {path.name}", False, tuple(notes), identity, names)


def file_identity(path: Path) -> str:
    """A file by where it is and what it is now: replaced by another file of the same name, it is other weights."""
    try:
        found = path.resolve().stat()
    except OSError:
        return f"file:{path}"
    return f"file:{path.resolve()}:{found.st_size}:{found.st_mtime_ns}"


def local_weight_files(directory: Path | None = None) -> list[Path]:
    """Weights files the server offers (in :func:`weights_dir` by default)."""
    directory = directory or weights_dir()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
