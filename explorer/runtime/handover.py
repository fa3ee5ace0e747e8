"""torch.compile run in a child process and handed to the server through the Inductor cache beside the builds.

Where AOTInductor packages do not load (torch 2.11 with CUDA 13), the server still need not hold its
interpreter for a cold compile. A child process (explorer.runtime.builds, kind ``"handed"``) compiles
exactly what the server will compile, on a GPU the captured pipeline of :class:`PipelineSteps.compiled`
steps, on a CPU those steps run once, checks the result against the eager pipeline, and writes its kernels
into the Inductor cache both processes use (:func:`share_inductor_cache`: ``inductor/`` beside the builds).
The server then compiles the same from that warm cache on a thread: the cold compile's minutes become
tens of seconds there.

Why the shared cache rather than torch's mega-cache artifacts (``save_cache_artifacts``): on a CPU the
artifacts leave out the compiled C++ kernels, so a compile after loading them still takes most of a cold
one (the small test network: 75.7 s cold, 49.8 s after loading the artifacts, 8.4 s from the shared cache,
2 cores here); on the H200 both took about 21 s.

The child lists, in its manifest, every cache file it wrote with its SHA-256. Before compiling from the
cache the server checks them (:func:`verify`): a file missing or changed means the cache was damaged, and
the build is made again rather than compiled from.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from explorer.nets import InceptionNetwork
from explorer.runtime.builds import FORMAT, BuildError, Request, cache_root, check, stand_in
from explorer.runtime.pipeline import PipelineSteps, compile_limits, pipeline


class DamagedCache(BuildError):
    """Files a handed build wrote into the compile cache are missing or changed (they have been removed);
    ``intact``: the build's other files, by name and digest, for the build made again to keep listing."""

    def __init__(self, message: str, intact: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.intact = intact or {}


def share_inductor_cache(root: Path | None = None) -> Path:
    """Point this process's Inductor cache (and Triton's, which lives inside it) at ``inductor/`` beside the
    builds, unless ``TORCHINDUCTOR_CACHE_DIR`` names another folder; child processes inherit it. The folder
    in use. (Importing torch._dynamo sets the variable to torch's default, a folder in /tmp: that is replaced.)"""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == _torch_default():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str((root or cache_root()) / "inductor")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def _torch_default() -> str:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # another torch: its default as torch 2.5 to 2.14 make it
        return os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")
    return os.path.abspath(default_cache_dir())


def compiled_rows(
    model: InceptionNetwork, request: Request, steps: PipelineSteps | None = None
) -> Callable[[Tensor], object]:
    """Compile the pipeline for ``request`` as the server does (``steps``: torch.compile'd by default): captured on
    a GPU, run once on a CPU; the compiling happens here, on their first calls. The pipeline, a function of a batch."""
    steps, size = steps or PipelineSteps.compiled(model), request.input_size
    x = torch.zeros(request.batch_size, 3, size, size, dtype=request.dtype, device=next(model.parameters()).device)
    with torch.inference_mode():  # an input the network cannot take fails now, in the network's own words,
        pipeline(model, x.contiguous(memory_format=torch.channels_last), request.top_k)  # not after minutes compiling
    if request.device.startswith("cuda"):
        from explorer.runtime.capture import CapturedPipeline

        return CapturedPipeline(model, request.batch_size, request.top_k, size, request.dtype, steps=steps)
    x = torch.zeros(request.batch_size, 3, size, size, dtype=request.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), compile_limits():
        pipeline(model, x, request.top_k, steps)

    def rows(batch: Tensor) -> Tensor:
        with torch.inference_mode(), compile_limits():
            return pipeline(model, batch.to(request.dtype), request.top_k, steps)[0]

    return rows


def build(request: Request, folder: Path, log: Callable[[str], None] = print) -> None:
    """The child's work: compile into the shared cache, check, and list what was written."""
    cache = share_inductor_cache()
    before = _stamps(cache)
    model = stand_in(request)
    log(f"compiling the pipeline with torch.compile into {cache}")
    rows = compiled_rows(model, request)
    log("checking the compiled pipeline")
    check(request, model, rows)
    written = {name: _digest(cache / name) for name, stamp in _stamps(cache).items() if before.get(name) != stamp}
    manifest = {
        "format": FORMAT,
        "request": repr(request),
        "torch": torch.__version__,
        "cache": str(cache.resolve()),
        "files": written,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: a folder without it is unfinished


def verify(folder: Path, request: Request) -> None:
    """Check a handed build against the cache in use before compiling from it. Raises :class:`BuildError` for a
    build made for other settings or another cache, :class:`DamagedCache` (after removing the damaged files,
    so that a new build writes them again) when its files are missing or changed."""
    manifest = json.loads((folder / "manifest.json").read_text())
    cache = share_inductor_cache().resolve()
    if manifest.get("format") != FORMAT or manifest.get("request") != repr(request):
        raise BuildError(f"{folder.name} does not match this network; delete it to build again")
    if manifest.get("cache") != str(cache):
        raise DamagedCache(f"{folder.name} was compiled into {manifest.get('cache')}, not {cache}")
    damaged = [name for name, digest in manifest["files"].items() if _digest(cache / name) != digest]
    for name in damaged:
        (cache / name).unlink(missing_ok=True)
    if damaged:
        intact = {name: digest for name, digest in manifest["files"].items() if name not in damaged}
        message = f"{len(damaged)} of the compile cache's files are missing or damaged ({damaged[0]})"
        raise DamagedCache(message, intact)


def adopt(folder: Path, intact: dict[str, str]) -> None:
    """List a damaged build's intact files in the manifest of the build that replaced it: the new child wrote only
    what was removed (the rest it found in the cache), and every file the compile reads stays checked."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = intact | manifest["files"]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, path)  # whole or not at all: a server starting now reads one or the other


def _stamps(cache: Path) -> dict[str, tuple[int, int]]:
    """Each file in the cache (not its locks) by its path in it: size and modification time."""
    stamps = {}
    for path in cache.rglob("*"):
        if path.is_file() and "locks" not in path.parts and path.suffix != ".lock":
            stat = path.stat()
            stamps[str(path.relative_to(cache))] = (stat.st_size, stat.st_mtime_ns)
    return stamps


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # gone
        return None
