"""The two ways an engine runs a batch: a CUDA graph on the GPU, block by block on the CPU.

Both give one packed float32 row per image and its :class:`~explorer.runtime.packing.Layout`
(explorer.runtime.pipeline writes them), plus where the time went.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from explorer.nets import InceptionNetwork
from explorer.runtime.ahead import load_steps
from explorer.runtime.builds import Request
from explorer.runtime.capture import GPU, CapturedPipeline
from explorer.runtime.packing import Layout
from explorer.runtime.pipeline import PipelineSteps, streamed_pipeline
from explorer.runtime.preprocessing import Preprocessing, crop_for_network, crop_on_device, normalise, to_tensor
from explorer.runtime.upgrade import WAYS, compile_setting, upgrade
from explorer.text.messages import console

#: What a runner gives back: the rows, their layout, each image's crop (uint8 HWC) and the timings in seconds.
Run = tuple[np.ndarray, Layout, list[np.ndarray], dict[str, float]]


class GpuRunner:
    """The inference copy on the GPU, bf16 channels-last, one captured CUDA graph per batch size.

    A batch size's graph is captured from plain kernels when first asked for (a second), then swapped for
    compiled ones found on a thread (explorer.runtime.upgrade: AOTInductor packages built by a child process
    where they load, else torch.compile in a child and here from its warm cache, else here alone), so that
    no image waits behind a cold compile. When packages for it are already on disk, the first capture loads
    them instead. Replays go one at a time, under ``lock``.
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
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model.to(device, memory_format=torch.channels_last)
        self.preprocessing, self.device, self.dtype, self.top_k, self._lock = preprocessing, device, dtype, top_k, lock
        # The ways to compiled kernels it may take: every one in order unless EXPLORER_COMPILE pins one or none.
        self.ways = compile_setting() if compile is None else compile_setting("1" if compile else "0")
        self.log = log or console
        self.notes: tuple[str, ...] = ()  # what went wrong in the background, for every later result
        self._graphs: dict[int, CapturedPipeline] = {}
        self._upgrades: dict[int, threading.Thread] = {}  # batch size -> its compile, in the background
        self.compiled: dict[int, str] = {}  # batch size -> the way its compiled graph in place came
        self.stopped = False  # set when the engine leaves the GPU: a compile finishing later is dropped
        self.retired = False  # set when another engine serves instead: nothing more is compiled for this one

    def captured(self, batch_size: int) -> CapturedPipeline:
        """The graph in place for a batch size, captured now if it is the first time (call under the lock)."""
        if batch_size not in self._graphs:
            request = self._request(batch_size)
            if "ahead" in self.ways and (request.folder() / "manifest.json").exists():
                with contextlib.suppress(Exception):  # a damaged build: the upgrade says why and builds it again
                    steps = load_steps(request.folder(), self.model, request)
                    self._graphs[batch_size] = self._capture(batch_size, steps)
                    self.compiled[batch_size] = "ahead"
            if batch_size not in self._graphs:
                self._graphs[batch_size] = self._capture(batch_size)
            if self.ways and batch_size not in self.compiled and batch_size not in self._upgrades:
                upgrade = threading.Thread(target=self._upgrade, args=(request,), daemon=True)
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

    def _request(self, batch_size: int) -> Request:
        precision = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        size = self.preprocessing.input_size
        return Request(self.model.config, str(self.device), batch_size, self.top_k, size, precision)

    def _capture(self, batch_size: int, steps: PipelineSteps | None = None) -> CapturedPipeline:
        size = self.preprocessing.input_size
        return CapturedPipeline(self.model, batch_size, self.top_k, size, self.dtype, steps=steps)

    def _upgrade(self, request: Request) -> None:
        """Find compiled kernels (minutes; this thread mostly waits on a child process), capture them while the
        plain graph keeps serving, then swap them in under the lock; or say why not, a line a way."""
        batch = request.batch_size
        wanted = lambda: not (self.stopped or self.retired)  # noqa: E731
        done = upgrade(self.model, request, partial(self._capture, batch), self.ways, log=self.log, wanted=wanted)
        if done.way == "dropped":
            return
        if done.made is None:
            self.notes += done.notes
            self.log(f"batch {batch}: running uncompiled kernels (every way of compiling failed, above)")
            return
        with self._lock:  # no call is replaying the old graph while it is swapped
            if not self.stopped:
                self._graphs[batch] = done.made
                self.compiled[batch] = done.way
        self.log(f"batch {batch}: compiled pipeline in place after {done.seconds:.0f} s ({WAYS[done.way]})")

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

    def retire(self) -> None:
        """Another engine serves in this one's place: it keeps serving whoever still holds it, on the graphs it
        has, but compiles nothing more (torch.compile would hold the interpreter for the engine that does)."""
        self.retired = True

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
