"""What sessions write on the server's disk (a new head's checkpoint, an index of uploads), within a quota per
session and a cap per server.

A session over its quota is refused with one line; the server past its cap drops what was written longest ago
(whole entries: a checkpoint, an index's folder) until the new one fits. Quota and cap come from
``EXPLORER_SESSION_DISK_MB`` (default :data:`SESSION_QUOTA_MB`: two checkpoints of the released network) and
``EXPLORER_SERVER_DISK_MB`` (default :data:`SERVER_CAP_MB`).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

SESSION_QUOTA_MB = 512
SERVER_CAP_MB = 4096


class QuotaError(ValueError):
    """A write a session may not make: its quota would be exceeded."""


def _megabytes(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        value = default
    return int(max(value, 0) * 2**20)


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder; 0 where it is gone."""
    return _measured(path)[0]


def _measured(path: Path) -> tuple[int, float]:
    """Bytes and the time of the last write: of a file, or of the files under a folder (its own time if empty)."""
    try:
        if path.is_file():
            stat = path.stat()
            return stat.st_size, stat.st_mtime
        stats = [p.stat() for p in path.rglob("*") if p.is_file()]
        return sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=path.stat().st_mtime)
    except OSError:  # removed while being measured
        return 0, 0.0


@dataclass(frozen=True)
class Entry:
    path: Path
    nbytes: int
    modified: float


class SessionDisk:
    """Entries under some folders (each a file or a folder at a fixed depth below them), owned by the sessions
    that wrote them (as long as this process runs; after a restart they count for the cap only)."""

    def __init__(self, roots: dict[Path, int], session_quota: int | None = None, server_cap: int | None = None) -> None:
        #: Each folder and the depth of its entries below it (1: its children; 2: their children).
        self.roots = roots
        if session_quota is None:
            session_quota = _megabytes("EXPLORER_SESSION_DISK_MB", SESSION_QUOTA_MB)
        self.session_quota = session_quota
        self.server_cap = _megabytes("EXPLORER_SERVER_DISK_MB", SERVER_CAP_MB) if server_cap is None else server_cap
        self._owned: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def entries(self) -> list[Entry]:
        """Every entry on disk now, oldest first; names starting with a dot (work in progress) are not entries."""
        found = []
        for root, depth in self.roots.items():
            for path in root.glob("/".join(["[!.]*"] * depth)) if root.is_dir() else ():
                found.append(Entry(path, *_measured(path)))
        return sorted(found, key=lambda entry: entry.modified)

    def used(self, session: str) -> int:
        with self._lock:
            return sum(size_of(path) for path in self._owned.get(session, ()))

    def check(self, session: str, nbytes: int, what: str) -> None:
        """:class:`QuotaError` if ``nbytes`` more would take the session past its quota."""
        used = self.used(session)
        if used + nbytes > self.session_quota:
            raise QuotaError(
                f"{what} ({nbytes / 2**20:.0f} MB) would take this session past its "
                f"{self.session_quota / 2**20:.0f} MB on the server ({used / 2**20:.0f} MB used): download what you "
                "made instead"
            )

    def claim(self, session: str, path: Path) -> list[Path]:
        """Record ``path`` as the session's, then drop the oldest entries (never ``path``) while the server is past
        its cap; returns what was dropped."""
        with self._lock:
            self._owned.setdefault(session, set()).add(path)
        dropped = []
        entries = self.entries()
        total = sum(entry.nbytes for entry in entries)
        for entry in entries:
            if total <= self.server_cap:
                break
            if entry.path == path:
                continue
            if entry.path.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                entry.path.unlink(missing_ok=True)
            total -= entry.nbytes
            dropped.append(entry.path)
        with self._lock:
            for paths in self._owned.values():
                paths.difference_update(dropped)
        return dropped

    def owned(self, session: str) -> list[Path]:
        """The session's entries still on disk, oldest first."""
        with self._lock:
            paths = [p for p in self._owned.get(session, ()) if p.exists()]
        return sorted(paths, key=lambda p: _measured(p)[1])
