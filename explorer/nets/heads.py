"""A checkpoint's head: how many classes it has, and their names.

A fine-tuned network keeps the backbone and changes the classifier: its rows are the classes. The names come
from the file itself (``class_names`` in a safetensors file's metadata, as a JSON list, or in a ``.pth`` dict), a
labels file beside it (``labels.txt``, one name a line, or ``labels.json``, a list or an index-to-name map), or
one given by name; else "class 0", "class 1"...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

HEADS = ("classif", "last_linear")
LABEL_FILES = ("labels.txt", "labels.json")


class LabelsError(ValueError):
    """Class names that cannot be used, with a message for people."""


def head_classes(state_dict: Mapping[str, Tensor]) -> int | None:
    """The classifier's number of classes (its weight's rows), or None without one."""
    for head in HEADS:
        weight = state_dict.get(f"{head}.weight")
        if weight is not None and weight.dim() == 2:
            return weight.shape[0]
    return None


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a labels file: ``.txt`` (one a line) or ``.json`` (a list, or {"0": "cat", ...})."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelsError(f"{path.name} cannot be read as a labels file ({error})") from None
    if path.suffix == ".json":
        try:
            found = json.loads(text)
        except ValueError as error:
            raise LabelsError(f"{path.name} is not JSON ({error})") from None
        return names_from(found, path.name)
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def names_from(found: object, where: str) -> tuple[str, ...]:
    """A list of names, or a map from class index to name, as a tuple in class order."""
    if isinstance(found, dict):
        try:
            indexed = {int(k): v for k, v in found.items()}
        except ValueError:
            raise LabelsError(f"{where}: the keys of a class map are class numbers") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise LabelsError(f"{where}: the class map does not number the classes 0 to {len(indexed) - 1}")
        found = [indexed[i] for i in range(len(indexed))]
    if not isinstance(found, list) or not all(isinstance(name, str) for name in found):
        raise LabelsError(f"{where}: expected a list of class names")
    return tuple(found)


def class_names(
    checkpoint: Path, classes: int, embedded: tuple[str, ...] | None, labels: str | Path | None
) -> tuple[tuple[str, ...] | None, Path | None, str | None]:
    """The names of a head's classes, the labels file they came from (None when from the checkpoint, or when there
    are none to find: the caller says "class 0...") and a note for people, if any. Names given (``labels``, or
    in the checkpoint) must match the head; a labels file merely found beside the checkpoint that does not (made
    for another head, say) is passed over, with a note saying so."""
    if labels is not None or embedded is not None:
        source = Path(labels) if labels is not None else None
        names = read_labels(source) if source is not None else embedded
        if names is not None and len(names) != classes:
            where = source.name if source is not None else checkpoint.name
            raise LabelsError(f"{where} names {len(names)} classes, the head of {checkpoint.name} has {classes}")
        return names, source, None
    found = next((checkpoint.with_name(n) for n in LABEL_FILES if checkpoint.with_name(n).is_file()), None)
    if found is None:
        return None, None, None
    try:
        names = read_labels(found)
    except LabelsError as error:
        return None, None, f"{error}: not used (the classes are numbered)"
    if len(names) != classes:
        note = f"{found.name} beside {checkpoint.name} names {len(names)} classes, its head has {classes}: not used"
        return None, None, note
    return names, found, None
