"""Each image's class, for an index built with ``--classes``: from the folder's layout or from a CSV file.

``folders``: the ImageFolder layout, where each sub-folder of the indexed folder is a class and an image's class is
the first folder of its path. ``FILE.csv``: ``path,label`` rows, the path relative to the indexed folder (a first
row ``path,label`` is a header). Every problem is found before any image is read, and said in one line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from explorer.channels.index.folder import FolderError

#: An image without a class (a file beside the class folders, or one the CSV does not list).
UNLABELLED = -1


@dataclass(frozen=True)
class Labels:
    """The classes (sorted names), each file's class as an index into them (:data:`UNLABELLED` for none), and
    where they came from, as the manifest records it."""

    names: tuple[str, ...]
    of_file: tuple[int, ...]
    source: str

    def to_json(self) -> dict:
        return {"from": self.source, "names": list(self.names)}


def read_labels(root: Path, files: list[str], classes: str) -> Labels:
    """The labels ``--classes`` names for ``files`` (the folder's files, :func:`list_files`'s order)."""
    if classes == "folders":
        named = {i: PurePosixPath(path).parts[0] for i, path in enumerate(files) if len(PurePosixPath(path).parts) > 1}
        source = "folders"
    else:
        named = _from_csv(Path(classes), files)
        source = Path(classes).name
    names = tuple(sorted(set(named.values())))
    if len(names) < 2:
        where = f"{root} has {len(names)} class folder{'s' if len(names) != 1 else ''} holding files"
        if classes != "folders":
            where = f"{classes} names {len(names)} class{'es' if len(names) != 1 else ''}"
        raise FolderError(f"--classes {source}: {where}; classes need at least two")
    number = {name: i for i, name in enumerate(names)}
    return Labels(names, tuple(number[named[i]] if i in named else UNLABELLED for i in range(len(files))), source)


def _from_csv(path: Path, files: list[str]) -> dict[int, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FolderError(f"--classes {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FolderError(f"--classes {path} cannot be read ({error})") from None
    position = {name: i for i, name in enumerate(files)}
    named: dict[int, str] = {}
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if line == 1 and [cell.strip().lower() for cell in row] == ["path", "label"]:
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise FolderError(f"{path.name} line {line}: expected 'path,label', found {','.join(row)[:80]!r}")
        file, label = PurePosixPath(row[0].strip()).as_posix().removeprefix("./"), row[1].strip()
        if file not in position:
            raise FolderError(f"{path.name} line {line}: {file[:80]!r} is not a file of the indexed folder")
        if named.get(position[file], label) != label:
            raise FolderError(f"{path.name} line {line}: {file[:80]!r} is given two labels")
        named[position[file]] = label
    return named
