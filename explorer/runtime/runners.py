"""The two ways an engine runs a batch: a CUDA graph on the GPU, block by block on the CPU.

Both give one packed float32 row per image and its :class:`~explorer.runtime.packing.Layout`
(explorer.runtime.pipeline writes them), plus where the time went.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from explorer.nets import InceptionNetwork
from explorer.runtime.ahead import Request, discard, ensure_built, load_steps
from explorer.runtime.capture import GPU, CapturedPipeline
from explorer.runtime.packing import Layout
from explorer.runtime.pipeline import streamed_pipeline
from explorer.runtime.preprocessing import Preprocessing, crop_for_network, crop_on_device, normalise, to_tensor
from explorer.text.messages import headline

#: What a runner gives back: the rows, their layout, each image's crop (uint8 HWC) and the timings in seconds.
Run = tuple[np.ndarray, Layout, list[np.ndarray], dict[str, float]]


class GpuRunner:
    """The inference copy on the GPU, bf16 channels-last, one captured CUDA graph per batch size.

    A batch size's graph is captured from plain kernels when first asked for (a second), then swapped for
    compiled ones: built ahead of time by a child process (explorer.runtime.ahead; minutes, once per torch
    version, GPU, network and batch size, kept on disk), so that no image waits behind the compiler. When the
    build is already on disk, the first capture loads it instead. Replays go one at a time, under ``lock``.
    """

    def __init__(
        self,
        model: InceptionNetwork,
        preprocessing: Preprocessing,
        device: torch.device,
        dtype: torch.dtype,
        top_k: int,
        compile: bool | None,
        lock: threading.Lock,
    ) -> None:
        self.model = model.to(device, memory_format=torch.channels_last)
        self.preprocessing, self.device, self.dtype, self.top_k, self._lock = preprocessing, device, dtype, top_k, lock
        # Compiled kernels fuse the per-block reductions: built once per network, batch size, GPU and torch in a
        # child process (EXPLORER_COMPILE=1, the default), or by torch.compile on a thread here (=thread: where a
        # torch's AOTInductor packages do not load; images slow down while it runs), or not at all (=0).
        mode = os.environ.get("EXPLORER_COMPILE", "1") if compile is None else "1" if compile else "0"
        self.compile = {"0": None, "thread": "thread"}.get(mode, "ahead")
        self.notes: tuple[str, ...] = ()  # what went wrong in the background, for every later result
        self._graphs: dict[int, CapturedPipeline] = {}
        self._upgrades: dict[int, threading.Thread] = {}  # batch size -> its compile, in the background
        self.compiled: set[int] = set()  # batch sizes whose compiled graph is in place
        self.stopped = False  # set when the engine leaves the GPU: a compile finishing later is dropped

    def captured(self, batch_size: int) -> CapturedPipeline:
        """The graph in place for a batch size, captured now if it is the first time (call under the lock)."""
        if batch_size not in self._graphs:
            request = self._request(batch_size)
            if request is not None and (request.folder() / "manifest.json").exists():
                graph = self._load(request)  # None when it fails: plain kernels then
                if graph is not None:
                    self._graphs[batch_size] = graph
                    self.compiled.add(batch_size)
            if batch_size not in self._graphs:
                size = self.preprocessing.input_size
                self._graphs[batch_size] = CapturedPipeline(self.model, batch_size, self.top_k, size, self.dtype)
            if self.compile and batch_size not in self.compiled and batch_size not in self._upgrades:
                build = self._compile if request is not None else self._compile_here
                upgrade = threading.Thread(target=build, args=(request or batch_size,), daemon=True)
                upgrade.name = f"explorer-compile-{batch_size}"
                self._upgrades[batch_size] = upgrade
                upgrade.start()
        return self._graphs[batch_size]

    def warm_up(self, progress: Callable[[str], None] | None = None) -> None:
        """Capture batch size 1's graph now (a second), so that the first image waits for no capture."""
        if progress:
            progress("Capturing the GPU pipeline (warm-up, seconds; compiling follows in the background)...")
        with self._lock:
            self.captured(1)

    def _request(self, batch_size: int) -> Request | None:
        if self.compile != "ahead":
            return None
        precision = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        size = self.preprocessing.input_size
        return Request(self.model.config, str(self.device), batch_size, self.top_k, size, precision)

    def _load(self, request: Request) -> CapturedPipeline | None:
        """The compiled graph from a finished build, or None, with a note, if it fails (its capture goes through
        the GPU gate, so it needs no lock: the caller swaps it in)."""
        try:
            steps = load_steps(request.folder(), self.model, request)
            size = self.preprocessing.input_size
            graph = CapturedPipeline(self.model, request.batch_size, self.top_k, size, self.dtype, steps=steps)
        except Exception as error:  # a damaged build: the plain kernels keep serving, and it is built again
            self.notes += (f"the compiled pipeline did not load ({_cause(error)}); running uncompiled kernels",)
            discard(request)
            return None
        return graph

    def _compile(self, request: Request) -> None:
        """Build in a child process (this thread waits without the interpreter), then load and swap in."""
        if request.batch_size in self.compiled:
            return
        try:
            ensure_built(request)
        except Exception as error:  # compilers fail in many ways; the plain kernels keep serving
            self.notes += (f"compiling failed ({_cause(error)}); running uncompiled kernels",)
            return
        graph = self._load(request)  # loaded and captured while the plain graph keeps serving
        with self._lock:  # no call is replaying the old graph while it is swapped
            if graph is not None and not self.stopped:
                self._graphs[request.batch_size] = graph
                self.compiled.add(request.batch_size)

    def _compile_here(self, batch_size: int) -> None:
        """torch.compile on this thread (a minute or two, holding the interpreter much of it), then swap in."""
        size = self.preprocessing.input_size
        try:
            graph = CapturedPipeline(self.model, batch_size, self.top_k, size, self.dtype, compile=True)
        except Exception as error:  # compilers fail in many ways; the plain kernels keep serving
            self.notes += (f"torch.compile failed ({_cause(error)}); running uncompiled kernels",)
            return
        with self._lock:
            if not self.stopped:
                self._graphs[batch_size] = graph
                self.compiled.add(batch_size)

    def compiling(self, batch_size: int = 1) -> bool:
        """Whether a batch size's compiled graph is still being built or loaded."""
        upgrade = self._upgrades.get(batch_size)
        return upgrade is not None and upgrade.is_alive()

    def wait_compiled(self, batch_size: int = 1, timeout: float | None = None) -> bool:
        """Wait for a batch size's compiled graph (benchmarks, tests); whether it is in place."""
        upgrade = self._upgrades.get(batch_size)
        if upgrade is not None:
            upgrade.join(timeout)
        return batch_size in self.compiled

    def stop(self) -> tuple[str, ...]:
        """Let go of the graphs (call under the lock): the engine carries on elsewhere; the notes so far."""
        self.stopped = True
        self._graphs.clear()
        return self.notes

    def __call__(self, images: Sequence[Image.Image]) -> Run:
        start = time.perf_counter()
        with self._lock:
            captured = self.captured(len(images))  # built on first use: a capture of its own
            with GPU.work():  # resized, cropped and normalised on the device, then the graph
                crops = torch.stack([self._crop(image) for image in images])
                x = normalise(crops, self.preprocessing)
                host_crops = list(crops.cpu().numpy())
                ready = time.perf_counter()
                rows = captured(x.to(memory_format=torch.channels_last))
            layout = captured.layout
        timings = {"preprocess": ready - start, "gpu (forward, maps, copy)": time.perf_counter() - ready}
        return rows, layout, host_crops, timings

    def _crop(self, image: Image.Image) -> Tensor:
        crop = crop_on_device(image, self.device, self.preprocessing)
        if crop is None:  # too elongated to resize whole: Pillow resamples just the part kept
            crop = torch.from_numpy(np.array(crop_for_network(image, self.preprocessing), dtype=np.uint8))
        return crop.to(self.device)


class CpuRunner:
    """The inference copy on the CPU, block by block (explorer.runtime.pipeline.streamed_pipeline), in ``dtype``,
    channels-last. One batch at a time, under ``lock``: torch already spreads each over every core, and
    concurrent requests would only make them fight over the same cores."""

    def __init__(
        self,
        model: InceptionNetwork,
        preprocessing: Preprocessing,
        dtype: torch.dtype,
        top_k: int,
        lock: threading.Lock,
    ) -> None:
        # Channels-last in float32 as well as bf16: oneDNN's convolutions run faster in it (all maps, one image:
        # 1.12 x timm's forward in NCHW, 0.99 x channels-last, on 2 AVX2 cores; 1.18 x and 1.06 x with AVX-512).
        self.model = model.to(dtype, memory_format=torch.channels_last)
        self.preprocessing, self.dtype, self.top_k, self._lock = preprocessing, dtype, top_k, lock

    def __call__(self, images: Sequence[Image.Image]) -> Run:
        start = time.perf_counter()
        crops = [crop_for_network(image, self.preprocessing) for image in images]
        x = torch.cat([to_tensor(crop, self.preprocessing) for crop in crops])
        ready = time.perf_counter()
        x = x.to(self.dtype, memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            packed, layout = streamed_pipeline(self.model, x, self.top_k)
        computed = time.perf_counter()
        host_crops = [np.asarray(crop, dtype=np.uint8).copy() for crop in crops]
        return packed.numpy(), layout, host_crops, {"preprocess": ready - start, "forward and maps": computed - ready}


def _cause(error: Exception) -> str:
    return headline(str(error)) or type(error).__name__
