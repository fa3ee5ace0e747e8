"""The server's default weights: timm's ImageNet weights when they can be had, random ones until then.

``EXPLORER_WEIGHTS`` says what the default is:

- ``auto`` (the default): ``hub:tf_in1k``, but never keeping anyone waiting for it;
- ``hub:TAG``: from the Hugging Face cache if it holds the file (no network touched); otherwise
  the server runs on random weights at once, downloads in the background and moves to the real
  weights when they are loaded; offline, it stays on random weights, decided within seconds;
- ``random``: seeded random weights;
- ``file:NAME``: a file in the weights folder (``EXPLORER_WEIGHTS_DIR``, ``weights/``).

Anything that goes wrong (a bad value, a file that does not fit, no network, a broken transfer)
leaves the server on random weights with a one-line message saying why and what to do. The
engine and the status change together under a lock; sessions read them as values.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from explorer.nets import make_config
from explorer.nets.hub import DEFAULT_TAG, HUB_REPOS, cached_hub_weights, download_hub_weights
from explorer.nets.loading import AUTO, load_weights, parse_weights_key
from explorer.nets.weights import RANDOM, WeightsError
from explorer.runtime.engine import Engine
from explorer.text.messages import console

Log = Callable[[str], None]


@dataclass(frozen=True)
class DefaultStatus:
    """Where the default weights stand, for the console and every page's sidebar."""

    weights: str  # the key of the weights the default engine carries (or is loading): "random", "hub:tf_in1k", ...
    phase: str  # "loading" | "downloading" | "ready" | "failed"
    message: str  # one line for people
    done: int = 0  # bytes downloaded so far
    total: int = 0  # bytes to download (0: not known yet)

    @property
    def busy(self) -> bool:
        """Still loading or downloading: the default engine may change."""
        return self.phase in ("loading", "downloading")


class DefaultWeights:
    """The default engine (released network) and how it came to carry its weights.

    ``start()`` begins at once and returns; ``current()`` waits only for the first engine (random
    weights where the real ones have to be downloaded first). Built once per server process.
    """

    def __init__(self, setting: str | None = None, device: str = "auto", log: Log = console) -> None:
        self.setting = setting if setting is not None else os.environ.get("EXPLORER_WEIGHTS", AUTO)
        self.device = device
        self._log = log
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self._status = DefaultStatus(RANDOM, "loading", "loading the default model")
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self) -> DefaultWeights:
        with self._lock:
            if self._thread is None:
                self._started = time.perf_counter()
                self._thread = threading.Thread(target=self._run, name="explorer-default-weights", daemon=True)
                self._thread.start()
        return self

    def status(self) -> DefaultStatus:
        with self._lock:
            return self._status

    def current(self, timeout: float | None = None) -> tuple[str, Engine]:
        """The default engine and the key of its weights, read together; waits for the first engine."""
        if not self._first.wait(timeout):
            raise TimeoutError("the default model is still loading")
        with self._lock:
            if self._engine is None:
                raise RuntimeError(f"loading the default model failed ({self._error})")
            return self._status.weights, self._engine

    def wait(self, timeout: float | None = None) -> DefaultStatus:
        """The status once loading and downloading are over (for tests, benchmarks and the CLI)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    # ---------------------------------------------------------------------------- the work

    def _run(self) -> None:
        try:
            wanted = parse_weights_key(self.setting)
        except WeightsError as error:
            self._random(f"EXPLORER_WEIGHTS={self.setting}: {error}; random weights", "failed")
            return
        if wanted == AUTO:
            wanted = f"hub:{DEFAULT_TAG}"
        if wanted == RANDOM:
            self._random("random weights, as EXPLORER_WEIGHTS asks", "ready")
        elif wanted.startswith("file:"):
            self._set(weights=wanted, message=f"loading {wanted}")
            try:
                self._publish(wanted, "ready")
            except WeightsError as error:
                self._random(f"{error}; random weights", "failed")
        else:
            self._hub(wanted.partition(":")[2])

    def _hub(self, tag: str) -> None:
        key, repo = f"hub:{tag}", HUB_REPOS[tag]
        if cached_hub_weights(tag) is not None:
            self._set(weights=key, message=f"loading {repo} from the Hugging Face cache")
            try:
                self._publish(key, "ready")
                return
            except WeightsError as error:  # load_hub_weights evicted the damaged file: fetch it again
                self._log(f"the cached {repo} is unusable ({error}); downloading it again")
        # Serve at once on random weights while the file downloads beside the build.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-download") as pool:
            download = pool.submit(download_hub_weights, tag, self._progress)
            self._random(f"random weights until {repo} is downloaded", "loading")
            if not download.done():
                self._set(phase="downloading", message=f"downloading {repo} into the Hugging Face cache")
            try:
                download.result()
                self._set(phase="loading", message=f"loading {repo}")
                self._publish(key, "ready")
            except WeightsError as error:
                self._set(phase="failed", message=f"{error}; random weights")
                self._log(self.status().message)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            before = self._status.done * 10 // self._status.total if self._status.total else -1
            self._status = replace(self._status, done=done, total=total)
        if total and done * 10 // total > before:  # the console hears of every tenth
            self._log(f"downloading the default weights: {done / 1e6:.0f} of {total / 1e6:.0f} MB")

    def _random(self, message: str, phase: str) -> None:
        try:
            self._publish(RANDOM, phase, message)
        except Exception as error:  # nothing to serve with: the pages retry and show the error
            with self._lock:
                self._error = error
                self._status = DefaultStatus(RANDOM, "failed", f"loading the model failed ({error})")
            self._first.set()
            self._log(f"loading the default model failed ({error}); pages will retry")
            return
        self._log(message)

    def _publish(self, key: str, phase: str, message: str | None = None) -> None:
        """Build the engine for ``key`` (outside the lock), then make it the default together with its status."""
        model, info = load_weights(key, make_config("released"))
        engine = Engine(model, info, device=self.device, log=self._log)  # its compiling's lines too
        took = time.perf_counter() - self._started
        with self._lock:
            first, before = self._engine is None, self._engine
            self._engine = engine
            self._status = replace(self._status, weights=key, phase=phase, message=message or info.source)
        self._first.set()
        if before is not None and before.gpu is not None:  # nobody new is served by it: nothing more to compile
            before.gpu.retire()
        verb = "is ready" if first else "moved to these weights"
        self._log(f"the default model {verb} on {engine.device} after {took:.1f} s; weights: {info.source}")

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
