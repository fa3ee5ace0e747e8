"""The dataset examples the network map's Channels view shows (explorer.ui.channel_view): the index in use and
the pictures of its examples.

The index is the server's (``EXPLORER_INDEX=DIR``, opened once, memory-mapped, shared by every session) or one a
session builds from the samples or its own uploads (kept on disk under a name made of what it depends on, so
that sessions asking for the same one share it). Sessions keep only that name, a value.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import streamlit as st
import torch

from explorer.channels import FolderError, IndexFileError, build_index
from explorer.channels.index.reader import ChannelIndex, Example
from explorer.drawing.examples import crop_box, mosaic, outlined
from explorer.drawing.heatmaps import png_bytes
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.images import ImageError, load_image, sample_paths
from explorer.runtime.jobs import Report
from explorer.runtime.preprocessing import crop_for_network, preprocessing_for
from explorer.text.usertext import shown
from explorer.ui.caches import cached_block_inputs
from explorer.ui.disk import indexes_root, server_disk
from explorer.ui.jobs import job_button, session_id
from explorer.ui.memory import budgeted

SERVER_INDEX = "EXPLORER_INDEX"
#: The most images a session's own index may hold (on a CPU server, about a minute's work), and their bytes.
MAX_IMAGES = 200
MAX_BYTES = 300 * 2**20


@st.cache_resource(show_spinner=False)
def opened(folder: str) -> ChannelIndex:
    """An index folder, opened once per server and shared read-only (its arrays memory-mapped)."""
    return ChannelIndex(folder)


def index_in_use(engine: Engine) -> tuple[ChannelIndex | None, str]:
    """The session's own index if it built one for this network, else the server's; and a line on where it is
    from, or why there is none."""
    own = st.session_state.get("channel_index", {}).get(engine.identity)
    folder, origin = (own, "this session's") if own else (os.environ.get(SERVER_INDEX), "the server's")
    if not folder:
        return None, (
            "No index of dataset examples for this network yet: build one below from the samples or your images, "
            "or start the server with `EXPLORER_INDEX=DIR` (made by `python -m explorer index FOLDER --out DIR`)."
        )
    try:
        index = opened(folder)
    except IndexFileError as error:
        return None, f"The server's index cannot be used: {shown(error, limit=300)}"
    identity = engine.identity
    misfit = index.matches(engine.config.variant, identity.network, identity.weights)
    if misfit:
        return None, f"The {origin} index does not fit: {misfit}."
    return index, f"{origin.capitalize()} index: {len(index.images)} images, the top {index.k} per channel."


# ------------------------------------------------------------------------------ a session's own index
def _folder_for(key: str) -> Path:
    return indexes_root() / key


def gather_images(uploads: list, use_samples: bool, into: Path) -> int:
    """The samples or the uploads (images and zips of images) written into a folder; refused, with a message for
    people, past :data:`MAX_IMAGES` images or :data:`MAX_BYTES` bytes."""
    into.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, bytes]] = []
    if use_samples:
        files = [(p.name, p.read_bytes()) for p in sample_paths()]
    for upload in uploads:
        data = upload.getvalue()
        if upload.name.lower().endswith(".zip"):
            files += _zip_members(upload.name, data)
        else:
            files.append((PurePosixPath(upload.name).name, data))
    if len(files) > MAX_IMAGES:
        raise ValueError(
            f"{len(files)} files: an index built here takes {MAX_IMAGES} at most (the CLI takes any number)"
        )
    if sum(len(data) for _, data in files) > MAX_BYTES:
        raise ValueError(f"more than {MAX_BYTES // 2**20} MB of images: the CLI indexes larger folders")
    seen: set[str] = set()
    for name, data in files:
        stem, suffix = os.path.splitext(name)
        unique, n = name, 1
        while unique in seen:  # two uploads of one name both count
            unique, n = f"{stem} ({n}){suffix}", n + 1
        seen.add(unique)
        (into / unique).write_bytes(data)
    return len(files)


def _zip_members(name: str, data: bytes) -> list[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [
            m for m in archive.infolist() if not m.is_dir() and not PurePosixPath(m.filename).name.startswith(".")
        ]
        if len(members) > MAX_IMAGES or sum(m.file_size for m in members) > MAX_BYTES:
            raise ValueError(f"{name} holds more than {MAX_IMAGES} files or {MAX_BYTES // 2**20} MB unpacked")
        # Only the file names: a member's folders (and any '..' in them) never reach the disk.
        return [(PurePosixPath(m.filename).name, archive.read(m)) for m in members]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
        raise ValueError(f"{name} is not a zip file that can be read ({error})") from None


def _count_images(uploads: list, use_samples: bool) -> int:
    """About how many images an index of these would hold (a zip's members read from its directory)."""
    count = len(sample_paths()) if use_samples else 0
    for upload in uploads:
        if upload.name.lower().endswith(".zip"):
            with contextlib.suppress(zipfile.BadZipFile, OSError, EOFError):  # said when the job reads it
                count += len(zipfile.ZipFile(io.BytesIO(upload.getvalue())).infolist())
        else:
            count += 1
    return count


def index_job(engine: Engine, uploads: list, use_samples: bool) -> tuple[str, Callable[[Report], str]]:
    """Where the index of the samples or the uploads lives (named by what it depends on, so that sessions asking
    for the same one share it) and the work that builds it there, reporting its progress; the work returns the
    index's folder."""
    digest = hashlib.sha256(repr(tuple(engine.identity)).encode())
    for upload in sorted(uploads, key=lambda u: u.name):
        digest.update(hashlib.sha256(upload.getvalue()).digest())
    digest.update(b"samples" if use_samples else b"")
    home = _folder_for(digest.hexdigest()[:24])
    images, out = home / "images", home / "index"
    source, weights, device = engine.source, engine.weights, engine.device
    disk, me = server_disk(), session_id()
    nbytes = sum(len(upload.getvalue()) for upload in uploads)

    def work(report: Report) -> str:
        if (out / "manifest.json").exists():
            return str(out)
        disk.check(me, nbytes, "This index's images")
        if not images.exists():
            gathered = Path(tempfile.mkdtemp(prefix=".images-", dir=_ready(home)))
            try:
                gather_images(uploads, use_samples, gathered)
                gathered.rename(images)
            except BaseException:
                shutil.rmtree(gathered, ignore_errors=True)
                raise
        count = sum(1 for _ in images.iterdir())
        report(0.0, f"indexing {count} files")
        try:
            build_index(
                images,
                out,
                source,
                weights,
                device=device,
                dtype=torch.float32,
                progress=lambda p: report(p.done / p.total, f"{p.done} of {p.total} files, {p.rate:.1f}/s"),
            )
        except (FolderError, IndexFileError) as error:  # its words name the server's folder: the user's files instead
            raise ValueError(str(error).replace(str(images), "your files").replace(str(home), "the server")) from None
        disk.claim(me, home)
        return str(out)

    return str(out), work


def _ready(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def builder(engine: Engine) -> None:
    """The form that builds a session's own index, as a job of the server's queue."""
    with st.expander("Build an index of your own, from the samples or your images", expanded=False):
        source = st.radio("From", ["The samples", "My images"], horizontal=True, key="index_source")
        uploads = []
        if source == "My images":
            uploads = (
                st.file_uploader(
                    f"Images, or zips of images (up to {MAX_IMAGES} files, {MAX_BYTES // 2**20} MB)",
                    accept_multiple_files=True,
                    key="index_uploads",
                )
                or []
            )
            if not uploads:
                st.caption("Add images or zips of images to index them.")
                return
        use_samples = source == "The samples"
        out, work = index_job(engine, uploads, use_samples)
        count = min(_count_images(uploads, use_samples), MAX_IMAGES)
        # About a minute for the most a session may index on a 2-core CPU (docs/guide/channels.md); seconds on
        # a GPU.
        seconds = 5 + count * (0.05 if engine.device.type == "cuda" else 0.3)
        done = job_button(
            ("index", out),
            f"Indexing {count} image{'s' if count != 1 else ''}",
            work,
            estimate_s=seconds,
            button="Build the index",
            widget_key="index_build",
            failed="The index was not built",
        )
        if done is not None:
            st.session_state.setdefault("channel_index", {})[engine.identity] = done.result
            st.rerun()


# ------------------------------------------------------------------------------ pictures of the examples
@budgeted()
def network_crop(root: str, path: str, variant: str) -> bytes | None:
    """An example's image as the network saw it (the 299x299 crop), as PNG; None when it is gone or unreadable."""
    try:
        image = load_image(Path(root) / path).image
    except ImageError:
        return None
    return png_bytes(crop_for_network(image, preprocessing_for(variant)))


def _crop(index: ChannelIndex, example: Example, size: int) -> object:
    from PIL import Image

    data = network_crop(str(index.root), example.path, index.manifest["variant"])
    if data is None:
        return Image.new("RGB", (size, size), (200, 200, 200))
    return crop_box(Image.open(io.BytesIO(data)).convert("RGB"), example.box, size)


@budgeted()
def channel_mosaic(folder: str, created: str, block: str, channel: int) -> bytes:
    """A channel's top examples, each the part of its image the maximum sees, as one PNG (keyed by the index's
    folder and the time it was made: a rebuilt index is another one)."""
    index = opened(folder)
    crops = [_crop(index, e, 72) for e in index.examples(block, channel)]
    return png_bytes(mosaic(crops, columns=3))


@budgeted()
def outlined_example(folder: str, created: str, block: str, channel: int, rank: int) -> bytes | None:
    from PIL import Image

    index = opened(folder)
    example = index.examples(block, channel)[rank]
    data = network_crop(str(index.root), example.path, index.manifest["variant"])
    if data is None:
        return None
    return png_bytes(outlined(Image.open(io.BytesIO(data)), example.box))


@budgeted("Computing the channel's map...")
def channel_map(_engine: Engine, engine_key: EngineIdentity, digest: str, block: str, channel: int, _data: bytes):
    """One channel of a block's output on the current image, (H, W) float32."""
    inputs = cached_block_inputs(_engine, engine_key, digest, _data)
    with torch.no_grad():
        output = _engine.source.get_submodule(block)(inputs[block].to(_engine.device))
    return output[0, channel].float().cpu().numpy()
