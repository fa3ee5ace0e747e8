"""The inference engine: one model on one device, shared read-only by every session.

An :class:`Engine` is a facade over parts that each own one job: a runner for its device
(:class:`~explorer.runtime.runners.GpuRunner`: bf16 channels-last, a CUDA graph replayed under a lock;
:class:`~explorer.runtime.runners.CpuRunner`: block by block, in bf16 where the CPU computes it natively),
the packed layout their rows are read with (explorer.runtime.packing), the inside of blocks
(explorer.runtime.inside) and the private copies attribution runs on (explorer.runtime.private). Each call
returns plain values (:class:`~explorer.runtime.results.InferenceResult`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from explorer.nets import InceptionNetwork
from explorer.nets.networks import is_within
from explorer.nets.weights import WeightsInfo
from explorer.runtime.capture import GPU
from explorer.runtime.device import cpu_dtype_here, pick_device, precision_allowed, tensor_bytes
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.inside import InsideMaps, block_inputs, inside_tensors, reduce_inside, unit_tensors
from explorer.runtime.labels import imagenet_labels
from explorer.runtime.packing import Layout
from explorer.runtime.preprocessing import Preprocessing, crop_for_network, preprocessing_for, to_tensor
from explorer.runtime.private import PrivateCopies
from explorer.runtime.results import InferenceResult
from explorer.runtime.runners import CpuRunner, GpuRunner


class EngineIdentity(NamedTuple):
    """Everything an engine's results depend on, as plain strings: the key of every result cached from it."""

    network: str  # the NetworkConfig's repr: every width, block count and residual scale
    weights: str  # explorer.nets.weights.weights_identity of the weights it carries
    device: str
    precision: str


class Engine:
    """One model on one device, shared read-only by every caller.

    The model is an inference copy (:func:`explorer.runtime.fastpath.inference_copy`: batch norms folded,
    each residual block's parallel 1x1 heads merged into one conv; the same block outputs from fewer
    kernels); ``source`` is the model as built, float32, for the inside of blocks and for attribution.
    """

    def __init__(
        self,
        model: InceptionNetwork,
        weights: WeightsInfo,
        device: str = "auto",
        top_k: int = 8,
        preprocessing: Preprocessing | None = None,
        gpu_dtype: torch.dtype = torch.bfloat16,
        compile: bool | None = None,
        progress: Callable[[str], None] | None = None,
        cpu_dtype: torch.dtype | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.device, note = pick_device(device)
        self.notes: tuple[str, ...] = (note,) if note else ()
        self.weights, self.config, self.top_k = weights, model.config, top_k
        self.preprocessing = preprocessing or preprocessing_for(model.config.variant)
        self.labels = weights.class_names or (imagenet_labels() if model.config.num_classes == 1000 else None)
        self._lock = threading.Lock()  # one forward at a time, whichever runner
        # Inference only: no parameter needs a gradient (Grad-CAM differentiates activations).
        fast = inference_copy(model).requires_grad_(False)
        with self.gate():  # copies to the device wait for no capture elsewhere
            self.source = model.eval().requires_grad_(False).to(self.device)
        self.private = PrivateCopies(lambda: self.source, self.gate)
        self.cpu_dtype = cpu_dtype or cpu_dtype_here()
        self.gpu_dtype = gpu_dtype if precision_allowed() else torch.float32
        self.gpu: GpuRunner | None = None  # the GPU's runner (its graphs, their compiles) while on the GPU
        if self.device.type == "cuda":
            with self.gate():
                self.gpu = GpuRunner(
                    fast, self.preprocessing, self.device, self.gpu_dtype, top_k, compile, self._lock, log
                )
            self.model, self._runner = self.gpu.model, self.gpu
            try:
                self.gpu.warm_up(progress)
            except torch.cuda.OutOfMemoryError:
                self.fall_back_to_cpu("the GPU has too little free memory")
        else:
            self._runner = CpuRunner(fast, self.preprocessing, self.cpu_dtype, top_k, self._lock)
            self.model = self._runner.model

    def fall_back_to_cpu(self, reason: str) -> None:
        """Carry on in float32 on the CPU (after a GPU failure), saying so in every later result."""
        with self._lock:
            if self.gpu is not None:
                self.notes += self.gpu.stop()
            self.model = self.model.to("cpu", memory_format=torch.contiguous_format).float()
            self.cpu_dtype = torch.float32
            self.source, self.device = self.source.to("cpu"), torch.device("cpu")
            self._runner = CpuRunner(self.model, self.preprocessing, self.cpu_dtype, self.top_k, self._lock)
            self.notes += (f"{reason}: running on the CPU instead",)
            self.gpu = None
        self.private.drop()  # made again, on the CPU, when next asked for
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def identity(self) -> EngineIdentity:
        """What this engine's results depend on; it changes if the engine falls back to the CPU."""
        return EngineIdentity(repr(self.config), self.weights.identity, str(self.device), self.precision)

    @property
    def nbytes(self) -> int:
        """The memory its models hold now: the inference copy, the model as built and, once attribution has
        been asked for, its private copy."""
        return tensor_bytes(self.model, self.source, self.private.kept)

    @property
    def precision(self) -> str:
        dtype = self.gpu_dtype if self.device.type == "cuda" else self.cpu_dtype
        return "bf16" if dtype == torch.bfloat16 else "fp32"

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class {index}"

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, Tensor]:
        """The crop the network sees (uint8 HWC) and its normalised tensor (1, 3, H, W) on the CPU."""
        crop = crop_for_network(image, self.preprocessing)
        return np.asarray(crop, dtype=np.uint8).copy(), to_tensor(crop, self.preprocessing)

    def run(self, image: Image.Image, notes: Sequence[str] = ()) -> InferenceResult:
        """Top-5 and every block's maps and statistics for one RGB image."""
        return self.run_batch([image], [notes])[0]

    def run_batch(
        self, images: Sequence[Image.Image], notes: Sequence[Sequence[str]] | None = None
    ) -> list[InferenceResult]:
        """:meth:`run` for several images in one pass."""
        start = time.perf_counter()
        try:
            rows, layout, crops, timings = self._runner(images)
        except torch.cuda.OutOfMemoryError:
            self.fall_back_to_cpu("the GPU ran out of memory")
            return self.run_batch(images, notes)
        timings["total"] = time.perf_counter() - start
        timings_ms = {k: v * 1000 for k, v in timings.items()}
        notes = notes or [()] * len(images)
        return [
            dataclasses.replace(self.unpack(row, layout, crop, note), timings_ms=timings_ms)
            for row, crop, note in zip(rows, crops, notes, strict=True)
        ]

    def unpack(self, row: np.ndarray, layout: Layout, crop: np.ndarray, notes: Sequence[str] = ()) -> InferenceResult:
        """One packed row (a pipeline's output for one image) as a result of this engine's."""
        top5, blocks = layout.read(row, self.label)
        return InferenceResult(
            weights=self.weights.source,
            random_weights=self.weights.random,
            device=f"{self.device} ({self.precision})",
            variant=self.config.variant,
            image=crop,
            top5=top5,
            blocks=blocks,
            timings_ms={},
            notes=tuple(notes) + self.notes + (self.gpu.notes if self.gpu else ()) + self.weights.notes,
        )

    def block_inputs(self, image: Image.Image) -> dict[str, Tensor]:
        """Every block's input for one image (float32, on the engine's device): what :meth:`inside` starts from.

        One forward pass of the model as built; keep the value (read-only) to open several blocks of one image.
        """
        _, x = self.prepare(image)
        with self._lock, self.gate(), torch.inference_mode():
            return block_inputs(self.source, x.to(self.device))

    def inside(self, inputs: dict[str, Tensor], node: str) -> tuple[InsideMaps, ...]:
        """Every output inside a block (``repeat_1.0``) or inside one of its units (``repeat_1.0.branch1.1``),
        in forward order, from :meth:`block_inputs`; :class:`ValueError` for anything else."""
        block = next((b for b in inputs if is_within(node, b)), None)
        if block is None:
            raise ValueError(f"unknown block {node!r}; blocks are: {', '.join(inputs)}")
        with self._lock, self.gate(), torch.inference_mode():
            if node == block:
                parts = inside_tensors(self.source.get_submodule(block), inputs[block], block)
            else:
                parts = unit_tensors(self.source, block, inputs[block], node)
            return reduce_inside(parts, self.top_k)

    def gate(self) -> contextlib.AbstractContextManager:
        """The GPU's gate for work off the captured graph (nothing to pass on a CPU)."""
        return GPU.work() if self.device.type == "cuda" else contextlib.nullcontext()
