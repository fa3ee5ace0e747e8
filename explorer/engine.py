"""The inference engine: one model on one device, shared read-only by every session.

An :class:`Engine` runs an inference copy of the network (explorer.fastpath): on a GPU, bf16 channels-last,
captured as a CUDA graph (explorer.capture) and replayed under a lock; on a CPU, block by block
(explorer.pipeline.streamed_pipeline), in bf16 where the CPU computes it natively. Each call returns an
:class:`~explorer.results.InferenceResult` made of plain values. It also opens blocks (explorer.inside)
and computes attribution maps (explorer.attribution, through Captum) on a private copy of the model as built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from explorer.attribution import (
    DEFAULTS,
    Attribution,
    Progress,
    SanityStep,
    Settings,
    explain,
    private_copy,
    sanity_check,
)
from explorer.capture import GPU, CapturedPipeline
from explorer.fastpath import inference_copy
from explorer.gradcam import grad_cam
from explorer.inside import InsideMaps, block_inputs, inside_tensors, reduce_inside, unit_tensors
from explorer.labels import imagenet_labels
from explorer.model import InceptionNetwork
from explorer.pipeline import Layout, streamed_pipeline
from explorer.preprocessing import (
    Preprocessing,
    crop_for_network,
    crop_on_device,
    normalise,
    preprocessing_for,
    to_tensor,
)
from explorer.results import BlockMaps, BlockStats, GradCam, InferenceResult, Prediction
from explorer.weights import WeightsInfo


def pick_device(preference: str = "auto") -> tuple[torch.device, str | None]:
    """The device to run on, and a note when the preference could not be met."""
    if preference == "cpu":
        return torch.device("cpu"), None
    if preference not in ("auto", "cuda"):
        raise ValueError(f"unknown device {preference!r}; expected auto, cpu or cuda")
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    return torch.device("cpu"), ("CUDA is not available here: running on the CPU" if preference == "cuda" else None)


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), as torch's CPU checks read it."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def precision_allowed() -> bool:
    """Reduced precision unless ``EXPLORER_PRECISION=fp32`` asks for float32 everywhere."""
    return os.environ.get("EXPLORER_PRECISION", "auto").lower() != "fp32"


class EngineIdentity(NamedTuple):
    """Everything an engine's results depend on, as plain strings: the key of every result cached from it."""

    network: str  # the NetworkConfig's repr: every width, block count and residual scale
    weights: str  # explorer.weights.weights_identity of the weights it carries
    device: str
    precision: str


def tensor_bytes(*modules: torch.nn.Module | None) -> int:
    """The bytes the parameters and buffers of some modules hold, each storage counted once."""
    seen: dict[int, int] = {}
    for module in modules:
        if module is None:
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class Engine:
    """One model on one device, shared read-only by every caller.

    The model is an inference copy (:func:`explorer.fastpath.inference_copy`: batch norms folded,
    each residual block's parallel 1x1 heads merged into one conv; the same block outputs from
    fewer kernels). On a GPU it runs channels-last in bf16 through a CUDA graph captured at
    start-up (the warm-up); on the CPU, block by block, in bf16 where the CPU computes it natively.
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
    ) -> None:
        self.device, note = pick_device(device)
        self.notes: tuple[str, ...] = (note,) if note else ()
        self.weights = weights
        self.config = model.config
        self.top_k = top_k
        self.preprocessing = preprocessing or preprocessing_for(model.config.variant)
        self.labels = imagenet_labels() if model.config.num_classes == 1000 else None
        # Inference only: no parameter needs a gradient (Grad-CAM differentiates activations).
        fast = inference_copy(model).requires_grad_(False)
        # The model as built, float32, for the inside of a block (its units, batch norms and all).
        with self._gpu():  # copies to the device wait for no capture elsewhere
            self.source = model.eval().requires_grad_(False).to(self.device)
        # On a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, read off the CPU), bf16 weights
        # channels-last run the forward in about half the time of float32; elsewhere float32.
        self.cpu_dtype = cpu_dtype or (torch.bfloat16 if cpu_bf16_native() and precision_allowed() else torch.float32)
        if self.device.type == "cuda":
            with self._gpu():
                fast = fast.to(self.device, memory_format=torch.channels_last)
        elif self.cpu_dtype != torch.float32:
            fast = fast.to(self.cpu_dtype, memory_format=torch.channels_last)
        self.model = fast
        self.gpu_dtype = gpu_dtype if precision_allowed() else torch.float32
        # torch.compile fuses the per-block reductions (a minute or two of warm-up, once per engine);
        # EXPLORER_COMPILE=0 keeps plain kernels, captured all the same.
        self.compile = os.environ.get("EXPLORER_COMPILE", "1") != "0" if compile is None else compile
        self._graphs: dict[int, CapturedPipeline] = {}
        self._lock = threading.Lock()
        self._explain_lock = threading.Lock()
        self._sanity_lock = threading.Lock()
        self._explainer: InceptionNetwork | None = None  # the private copy for attribution, made on first use
        self._upgrades: dict[int, threading.Thread] = {}  # batch size -> its compile, in the background
        self.compiled: set[int] = set()  # batch sizes whose compiled graph is in place
        if self.device.type == "cuda":
            if progress:
                progress("Capturing the GPU pipeline (warm-up, seconds; compiling follows in the background)...")
            try:
                self._captured(1)
            except torch.cuda.OutOfMemoryError:
                self.fall_back_to_cpu("the GPU has too little free memory")

    def fall_back_to_cpu(self, reason: str) -> None:
        """Carry on in float32 on the CPU (after a GPU failure), saying so in every later result."""
        with self._lock:
            self._graphs.clear()
            self.model = self.model.to("cpu", memory_format=torch.contiguous_format).float()
            self.cpu_dtype = torch.float32
            self.source = self.source.to("cpu")
            self._explainer = None  # made again, on the CPU, when next asked for
            self.device = torch.device("cpu")
            self.notes += (f"{reason}: running on the CPU instead",)
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
        return tensor_bytes(self.model, self.source, self._explainer)

    @property
    def precision(self) -> str:
        dtype = self.gpu_dtype if self.device.type == "cuda" else self.cpu_dtype
        return "bf16" if dtype == torch.bfloat16 else "fp32"

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class {index}"

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, Tensor]:
        crop = crop_for_network(image, self.preprocessing)
        return np.asarray(crop, dtype=np.uint8).copy(), to_tensor(crop, self.preprocessing)

    def _captured(self, batch_size: int) -> CapturedPipeline:
        """The graph for a batch size (under the lock): plain kernels captured in a second at first, swapped for
        torch.compile'd ones when their compile, a minute or two on a thread of its own, is done."""
        if batch_size not in self._graphs:
            size = self.preprocessing.input_size
            self._graphs[batch_size] = CapturedPipeline(self.model, batch_size, self.top_k, size, self.gpu_dtype)
            if self.compile and batch_size not in self._upgrades:
                upgrade = threading.Thread(target=self._compile, args=(batch_size,), daemon=True)
                upgrade.name = f"explorer-compile-{batch_size}"
                self._upgrades[batch_size] = upgrade
                upgrade.start()
        return self._graphs[batch_size]

    def _compile(self, batch_size: int) -> None:
        size = self.preprocessing.input_size
        try:
            graph = CapturedPipeline(self.model, batch_size, self.top_k, size, self.gpu_dtype, compile=True)
        except Exception as error:  # compilers fail in many ways; the plain kernels keep serving
            self.notes += (f"torch.compile failed ({type(error).__name__}); running uncompiled kernels",)
            return
        with self._lock:  # no call is replaying the old graph while it is swapped
            if self.device.type == "cuda":
                self._graphs[batch_size] = graph
                self.compiled.add(batch_size)

    def wait_compiled(self, batch_size: int = 1, timeout: float | None = None) -> bool:
        """Wait for a batch size's compiled graph (benchmarks, tests); whether it is in place."""
        upgrade = self._upgrades.get(batch_size)
        if upgrade is not None:
            upgrade.join(timeout)
        return batch_size in self.compiled

    def run(self, image: Image.Image, notes: Sequence[str] = ()) -> InferenceResult:
        """Top-5 and every block's maps and statistics for one RGB image."""
        return self.run_batch([image], [notes])[0]

    def run_batch(
        self, images: Sequence[Image.Image], notes: Sequence[Sequence[str]] | None = None
    ) -> list[InferenceResult]:
        """:meth:`run` for several images in one pass."""
        start = time.perf_counter()
        ready = start
        if self.device.type == "cuda":
            try:
                with self._lock:
                    captured = self._captured(len(images))  # built on first use: a capture of its own
                    with GPU.work():  # resized, cropped and normalised on the device, then the graph
                        crops = torch.stack([self._crop_on_device(image) for image in images])
                        x = normalise(crops, self.preprocessing)
                        prepared = [(crop, None) for crop in crops.cpu().numpy()]
                        ready = time.perf_counter()
                        host = captured(x.to(memory_format=torch.channels_last))
                    layout = captured.layout
            except torch.cuda.OutOfMemoryError:
                self.fall_back_to_cpu("the GPU ran out of memory")
                return self.run_batch(images, notes)
            timings = {"preprocess": ready - start, "gpu (forward, maps, copy)": time.perf_counter() - ready}
        else:
            prepared = [self.prepare(image) for image in images]
            x = torch.cat([tensor for _, tensor in prepared])
            ready = time.perf_counter()
            # One image at a time: torch already spreads each over every core, and concurrent
            # requests would only make them fight over the same cores.
            if self.cpu_dtype != torch.float32:
                x = x.to(self.cpu_dtype, memory_format=torch.channels_last)
            with self._lock, torch.inference_mode():
                packed, layout = streamed_pipeline(self.model, x, self.top_k)
            computed = time.perf_counter()
            host = packed.numpy()
            timings = {"preprocess": ready - start, "forward and maps": computed - ready}
        timings["total"] = time.perf_counter() - start
        timings_ms = {k: v * 1000 for k, v in timings.items()}
        notes = notes or [()] * len(images)
        return [
            dataclasses.replace(self._unpack(row, layout, crop, note), timings_ms=timings_ms)
            for row, (crop, _), note in zip(host, prepared, notes, strict=True)
        ]

    def _crop_on_device(self, image: Image.Image) -> Tensor:
        crop = crop_on_device(image, self.device, self.preprocessing)
        if crop is None:  # too elongated to resize whole: Pillow resamples just the part kept
            crop = torch.from_numpy(np.array(crop_for_network(image, self.preprocessing), dtype=np.uint8))
        return crop.to(self.device)

    def _unpack(self, row: np.ndarray, layout: Layout, crop: np.ndarray, notes: Sequence[str]) -> InferenceResult:
        offset = 0

        def take(n: int) -> np.ndarray:
            nonlocal offset
            chunk = row[offset : offset + n]
            offset += n
            return chunk

        probabilities, indices = take(5), take(5).astype(int)
        top5 = tuple(
            Prediction(self.label(int(i)), float(p), int(i)) for p, i in zip(probabilities, indices, strict=True)
        )
        blocks = []
        for name, (channels, height, width), k, n_stats in layout:
            mean_map = take(height * width).reshape(height, width)
            max_map = take(height * width).reshape(height, width)
            top_channels = tuple(int(c) for c in take(k))
            top_maps = take(k * height * width).reshape(k, height, width)
            stats = take(n_stats)
            ratio = float(stats[3]) if n_stats > 3 else None
            block_stats = BlockStats(float(stats[0]), float(stats[1]), float(stats[2]), ratio)
            blocks.append(
                BlockMaps(name, (channels, height, width), mean_map, max_map, top_channels, top_maps, block_stats)
            )
        return InferenceResult(
            weights=self.weights.source,
            random_weights=self.weights.random,
            device=f"{self.device} ({self.precision})",
            variant=self.model.config.variant,
            image=crop,
            top5=top5,
            blocks=tuple(blocks),
            timings_ms={},
            notes=tuple(notes) + self.notes + self.weights.notes,
        )

    def block_inputs(self, image: Image.Image) -> dict[str, Tensor]:
        """Every block's input for one image (float32, on the engine's device): what :meth:`inside` starts from.

        One forward pass of the model as built; keep the value (read-only) to open several blocks of one image.
        """
        _, x = self.prepare(image)
        with self._lock, self._gpu(), torch.inference_mode():
            return block_inputs(self.source, x.to(self.device))

    def inside(self, inputs: dict[str, Tensor], node: str) -> tuple[InsideMaps, ...]:
        """Every output inside a block (``repeat_1.0``) or inside one of its units (``repeat_1.0.branch1.1``),
        in forward order, from :meth:`block_inputs`; :class:`ValueError` for anything else."""
        block = next((b for b in inputs if node == b or node.startswith(b + ".")), None)
        if block is None:
            raise ValueError(f"unknown block {node!r}; blocks are: {', '.join(inputs)}")
        with self._lock, self._gpu(), torch.inference_mode():
            if node == block:
                parts = inside_tensors(self.source.get_submodule(block), inputs[block], block)
            else:
                parts = unit_tensors(self.source, block, inputs[block], node)
            return reduce_inside(parts, self.top_k)

    def grad_cam(self, image: Image.Image, block: str, class_index: int | None = None) -> GradCam:
        """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block``, on the model as built (Captum)."""
        _, x = self.prepare(image)
        with self._explaining() as model:
            return grad_cam(model, x.to(self.device), block, class_index, self.label)

    def explain(
        self,
        image: Image.Image,
        method: str,
        block: str | None = None,
        class_index: int | None = None,
        settings: Settings = DEFAULTS,
        progress: Progress | None = None,
    ) -> Attribution:
        """One attribution method's map (explorer.attribution) for one image, on the model as built."""
        _, x = self.prepare(image)
        with self._explaining() as model:
            return explain(model, x.to(self.device), method, self.label, block, class_index, settings, progress)

    def sanity_check(
        self,
        image: Image.Image,
        methods: Sequence[str],
        block: str | None = None,
        class_index: int | None = None,
        settings: Settings = DEFAULTS,
        progress: Progress | None = None,
    ) -> tuple[dict[str, Attribution], dict[str, list[SanityStep]]]:
        """The cascading-randomisation check for some methods on one image.

        It randomises a copy of its own, so it leaves the attribution copy to other callers; checks run one at a
        time, each copy holding the model's memory for their seconds.
        """
        _, x = self.prepare(image)
        with self._sanity_lock, self._gpu():
            return sanity_check(
                self.source, x.to(self.device), methods, self.label, block, class_index, settings, progress
            )

    @contextlib.contextmanager
    def _explaining(self) -> Iterator[InceptionNetwork]:
        """The engine's private copy for attribution, one caller at a time: Captum hooks its modules while it
        works, so it must not be a model anyone else runs (a copy costs the model's memory once, where a lock
        on the shared model would hold up every session's images for the seconds an attribution takes)."""
        with self._explain_lock, self._gpu():
            if self._explainer is None:
                self._explainer = private_copy(self.source)
            yield self._explainer

    def _gpu(self) -> contextlib.AbstractContextManager:
        """The GPU gate for work off the captured graph (nothing to pass on a CPU)."""
        return GPU.work() if self.device.type == "cuda" else contextlib.nullcontext()
