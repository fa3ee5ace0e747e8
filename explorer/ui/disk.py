"""What sessions write on the server (explorer.runtime.disk): new heads' checkpoints in the weights folder's
``new-heads/`` (one folder a session, listed to that session only unless ``EXPLORER_SHARE_NEW_HEADS=1``) and
indexes of uploads, within a quota per session and a cap per server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import streamlit as st

from explorer.nets.weights import SESSION_FILES, weights_dir
from explorer.runtime.disk import SessionDisk
from explorer.ui.jobs import session_id


def indexes_root() -> Path:
    """Where sessions' indexes are built: one folder each, named by what it depends on."""
    return Path(tempfile.gettempdir()) / "explorer-indexes"


@st.cache_resource(show_spinner=False)
def server_disk() -> SessionDisk:
    return SessionDisk({weights_dir() / SESSION_FILES: 2, indexes_root(): 1})


def shared() -> bool:
    """Whether the server lists every session's new heads to everyone (``EXPLORER_SHARE_NEW_HEADS=1``)."""
    return os.environ.get("EXPLORER_SHARE_NEW_HEADS", "").strip().lower() in ("1", "true", "yes")


def own_folder() -> str:
    """This session's folder of checkpoints, relative to the weights folder."""
    return f"{SESSION_FILES}/{'shared' if shared() else session_id()}"


def own_weight_names() -> list[str]:
    """The checkpoints this session may pick, as names relative to the weights folder (``file:`` keys)."""
    folder = weights_dir() / own_folder()
    if not folder.is_dir():
        return []
    return sorted(f"{own_folder()}/{p.name}" for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def save_checkpoint(data: bytes, name: str) -> str | None:
    """The checkpoint written whole into this session's folder, as a name for a ``file:`` key; None where the
    server has no weights folder it may write to; :class:`~explorer.runtime.disk.QuotaError` past the quota."""
    base = weights_dir()
    if not base.is_dir() or not os.access(base, os.W_OK):
        return None
    disk, me = server_disk(), session_id()
    relative = f"{own_folder()}/{name}"
    target = base / relative
    if target.exists():
        return relative
    disk.check(me, len(data), "This checkpoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    disk.claim(me, target)
    return relative
