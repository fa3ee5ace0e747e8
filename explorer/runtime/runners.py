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
from explorer.runtime.capture import GPU, CapturedPipeline
from explorer.runtime.packing import Layout
from explorer.runtime.pipeline import streamed_pipeline
from explorer.runtime.preprocessing import Preprocessing, crop_for_network, crop_on_device, normalise, to_tensor

#: What a runner gives back: the rows, their layout, each image's crop (uint8 HWC) and the timings in seconds.
Run = tuple[np.ndarray, Layout, list[np.ndarray], dict[str, float]]


class GpuRunner:
    """The inference copy on the GPU, bf16 channels-last, one captured CUDA graph per batch size.

    A batch size's graph is captured from plain kernels when first asked for (a second), then swapped for
    torch.compile'd ones when their compile, a minute or two on a thread of its own, is done. Replays go one at
    a time, under ``lock``.
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
        # torch.compile fuses the per-block reductions (a minute or two of warm-up, once per engine);
        # EXPLORER_COMPILE=0 keeps plain kernels, captured all the same.
        self.compile = os.environ.get("EXPLORER_COMPILE", "1") != "0" if compile is None else compile
        self.notes: tuple[str, ...] = ()  # what went wrong in the background, for every later result
        self._graphs: dict[int, CapturedPipeline] = {}
        self._upgrades: dict[int, threading.Thread] = {}  # batch size -> its compile, in the background
        self.compiled: set[int] = set()  # batch sizes whose compiled graph is in place
        self.stopped = False  # set when the engine leaves the GPU: a compile finishing later is dropped

    def captured(self, batch_size: int) -> CapturedPipeline:
        """The graph in place for a batch size, captured now if it is the first time (call under the lock)."""
        if batch_size not in self._graphs:
            size = self.preprocessing.input_size
            self._graphs[batch_size] = CapturedPipeline(self.model, batch_size, self.top_k, size, self.dtype)
            if self.compile and batch_size not in self._upgrades:
                upgrade = threading.Thread(target=self._compile, args=(batch_size,), daemon=True)
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

    def _compile(self, batch_size: int) -> None:
        size = self.preprocessing.input_size
        try:
            graph = CapturedPipeline(self.model, batch_size, self.top_k, size, self.dtype, compile=True)
        except Exception as error:  # compilers fail in many ways; the plain kernels keep serving
            self.notes += (f"torch.compile failed ({type(error).__name__}); running uncompiled kernels",)
            return
        with self._lock:  # no call is replaying the old graph while it is swapped
            if not self.stopped:
                self._graphs[batch_size] = graph
                self.compiled.add(batch_size)

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
