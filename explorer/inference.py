"""Live inference: preprocessing, one forward pass to every block's maps and statistics, Grad-CAM.

An :class:`Engine` owns one model on one device and is shared by every session: the model is only
read, the GPU graph's fixed buffers are used under a lock, and each call returns an
:class:`InferenceResult` made of plain values (numpy arrays, numbers, strings) that can be cached,
pickled and shown anywhere.

Per block, the maps are reduced on the device (channel mean, channel max, the k channels with the
highest mean activation) together with the statistics, then everything the host needs is packed
into one buffer and copied once.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from explorer.fastpath import inference_copy
from explorer.inside import InsideMaps, block_inputs, inside_tensors, reduce_inside, unit_tensors
from explorer.model import InceptionResNetBlock, InceptionResNetV2
from explorer.reductions import reduce_block
from explorer.weights import WeightsInfo

# --------------------------------------------------------------------------------------------
# Preprocessing and labels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """What the tf_in1k weights expect (timm's pretrained config for inception_resnet_v2)."""

    input_size: int = 299
    interpolation: str = "bicubic"
    crop_pct: float = 0.8975
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def resize_to(self) -> int:
        return math.floor(self.input_size / self.crop_pct)


TF_IN1K = Preprocessing()


def crop_for_network(image: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Image.Image:
    """Resize the shorter side to ``input_size / crop_pct`` (bicubic) and take the centre square.

    What torchvision's ``Resize`` then ``CenterCrop`` (timm's eval transform) give, to within one
    intensity level from Pillow's integer rounding, computed by resampling only the source region
    the crop keeps: the same filter over the same pixels, without enlarging the parts that are cut
    away (a 1x5000 strip stays cheap).
    """
    width, height = image.size
    short, long = min(width, height), max(width, height)
    target_long = int(preprocessing.resize_to * long / short)
    new_width, new_height = (
        (preprocessing.resize_to, target_long) if width <= height else (target_long, preprocessing.resize_to)
    )
    size = preprocessing.input_size
    left = round((new_width - size) / 2.0)
    top = round((new_height - size) / 2.0)
    sx, sy = width / new_width, height / new_height
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box)


def to_tensor(crop: Image.Image, preprocessing: Preprocessing = TF_IN1K) -> Tensor:
    """The cropped RGB image as the normalised (1, 3, H, W) float tensor the network takes.

    The arithmetic of torchvision's ``pil_to_tensor``, ``to_dtype(scale=True)`` and ``normalize``
    (a test checks they agree exactly), written out so that the first result does not wait for
    torchvision's import: about two seconds, since it loads torch's compiler.
    """
    pixels = torch.from_numpy(np.array(crop.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)
    mean = torch.tensor(preprocessing.mean).reshape(3, 1, 1)
    std = torch.tensor(preprocessing.std).reshape(3, 1, 1)
    return ((pixels.float() / 255 - mean) / std).unsqueeze(0)


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names bundled with torchvision (no download).

    Read as data from torchvision's own category table (``torchvision/models/_meta.py``: the
    list literal is parsed, nothing is executed) without importing the package, for the same two
    seconds as above; the public route, the ResNet-50 weights' metadata, is the fallback should
    that file change, and a test checks that both agree.
    """
    spec = importlib.util.find_spec("torchvision")
    table = Path(spec.origin).parent / "models" / "_meta.py" if spec and spec.origin else None
    if table is not None and table.is_file():
        for statement in ast.parse(table.read_text()).body:
            if (
                isinstance(statement, ast.Assign)
                and [getattr(t, "id", None) for t in statement.targets] == ["_IMAGENET_CATEGORIES"]
                and isinstance(statement.value, ast.List)
            ):
                categories = ast.literal_eval(statement.value)
                if len(categories) == 1000 and all(isinstance(c, str) for c in categories):
                    return tuple(categories)
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockStats:
    mean: float
    std: float
    zero_fraction: float
    residual_ratio: float | None  # |scaled residual| / |shortcut|, for residual blocks


@dataclass(frozen=True)
class BlockMaps:
    name: str
    shape: tuple[int, int, int]  # channels, height, width
    mean: np.ndarray  # (H, W): mean over channels
    max: np.ndarray  # (H, W): max over channels
    top_channels: tuple[int, ...]  # the k channels with the highest mean activation
    top_maps: np.ndarray  # (k, H, W)
    stats: BlockStats


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    index: int


@dataclass(frozen=True)
class InferenceResult:
    weights: str
    random_weights: bool
    device: str
    variant: str
    image: np.ndarray  # (H, W, 3) uint8: what the network saw, after resizing and cropping
    top5: tuple[Prediction, ...]
    blocks: tuple[BlockMaps, ...]
    timings_ms: dict[str, float]
    notes: tuple[str, ...] = field(default=())

    def block(self, name: str) -> BlockMaps:
        return next(b for b in self.blocks if b.name == name)

    def to_json(self) -> dict:
        """Everything but the maps, in forward order."""
        return {
            "weights": self.weights,
            "random_weights": self.random_weights,
            "device": self.device,
            "variant": self.variant,
            "top5": [{"label": p.label, "probability": p.probability, "index": p.index} for p in self.top5],
            "blocks": [
                {
                    "name": b.name,
                    "shape": list(b.shape),
                    "statistics": {
                        "mean": b.stats.mean,
                        "std": b.stats.std,
                        "zero_fraction": b.stats.zero_fraction,
                        "residual_ratio": b.stats.residual_ratio,
                    },
                    "top_channels": list(b.top_channels),
                }
                for b in self.blocks
            ],
            "timings_ms": self.timings_ms,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# One block's packed numbers, per image: mean map, max map, top channel indices, their maps, stats.
Layout = list[tuple[str, tuple[int, int, int], int, int]]  # (name, (C, H, W), k, number of stats)


class BlockGroup(nn.Module):
    """Consecutive blocks of a model whose maps are reduced together: a run of residual blocks
    (one shape, since a residual block keeps its input's shape), or a single other block.

    Holds the model's own block modules (nothing is copied); calling it runs them in order and
    returns each block's output and, for residual blocks, each scaled residual branch.
    """

    def __init__(self, blocks: Sequence[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.names = [name for name, _ in blocks]
        self.blocks = nn.ModuleList(block for _, block in blocks)
        self.residual = isinstance(self.blocks[0], InceptionResNetBlock)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        outputs, residuals = [], []
        for block in self.blocks:
            if self.residual:
                x, residual = block.forward_parts(x)
                residuals.append(residual)
            else:
                x = block(x)
            outputs.append(x)
        return outputs, residuals


def block_groups(model: InceptionResNetV2) -> list[BlockGroup]:
    """The model's blocks in forward order, cut into :class:`BlockGroup` s."""
    runs: list[list[tuple[str, nn.Module]]] = []
    for name, block in model.blocks():
        residual = isinstance(block, InceptionResNetBlock)
        if residual and runs and isinstance(runs[-1][-1][1], InceptionResNetBlock):
            runs[-1].append((name, block))
        else:
            runs.append([(name, block)])
    return [BlockGroup(run) for run in runs]


def reduce_group(outputs: list[Tensor], group_input: Tensor, residuals: list[Tensor], top_k: int) -> Tensor:
    """One group's packed numbers, (B, G * n): per image, each block's :func:`reduce_block` parts
    in forward order. The group's outputs are stacked and reduced as one batch, so a run of ten
    blocks costs the kernels of one."""
    batch = group_input.shape[0]
    stacked = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    shortcuts = added = None
    if residuals:  # what each block received: the group's input, then the previous block's output
        shortcuts = torch.cat([group_input, *outputs[:-1]])
        added = torch.cat(residuals) if len(residuals) > 1 else residuals[0]
    parts = reduce_block(stacked, shortcuts, added, top_k)  # each (G * B, n)
    per_block = torch.cat([part.reshape(len(outputs), batch, -1) for part in parts], 2)  # (G, B, n)
    return per_block.transpose(0, 1).reshape(batch, -1)


def head_part(model: InceptionResNetV2, features: Tensor) -> Tensor:
    """The top-5 probabilities and class indices, (B, 10)."""
    top = model.forward_head(features).float().softmax(1).topk(5, dim=1)
    return torch.cat([top.values, top.indices.float()], 1)


@dataclass(frozen=True)
class PipelineSteps:
    """The callables :func:`pipeline` runs: each group's forward, a group's reduction, the head.

    Plain eager modules and functions by default; :meth:`compiled` swaps in torch.compile'd ones
    (one compiled forward per group, so that each group's maps can be reduced, on a second CUDA
    stream, while the next groups run). Built once per model and reused.
    """

    groups: list[BlockGroup]
    forwards: list[Callable[[Tensor], tuple[list[Tensor], list[Tensor]]]]
    reduce: Callable[..., Tensor] = reduce_group
    head: Callable[[InceptionResNetV2, Tensor], Tensor] = head_part

    @classmethod
    def eager(cls, model: InceptionResNetV2) -> PipelineSteps:
        groups = block_groups(model)
        return cls(groups, list(groups))

    @classmethod
    def compiled(cls, model: InceptionResNetV2) -> PipelineSteps:
        groups = block_groups(model)
        return cls(
            groups,
            [torch.compile(group, dynamic=False) for group in groups],
            torch.compile(reduce_group, dynamic=False),
            torch.compile(head_part, dynamic=False),
        )


def pipeline(
    model: InceptionResNetV2,
    x: Tensor,
    top_k: int,
    steps: PipelineSteps | None = None,
    *,
    out: Tensor | None = None,
    reduce_stream: torch.cuda.Stream | None = None,
) -> tuple[Tensor, Layout]:
    """The whole per-image computation: forward, top-5, every block's maps and statistics, packed.

    Returns one (B, n) float32 tensor, a row per image (written into ``out`` when given), and the
    layout to read a row back. The same function runs eagerly on the CPU and, captured once as a
    CUDA graph, on the GPU. There, with a ``reduce_stream``, each group's reductions run on that
    stream while the main stream goes on with the next group's forward: at batch 1 neither fills
    the GPU, so the maps cost little more than the forward alone.
    """
    steps = steps or PipelineSteps.eager(model)
    main = torch.cuda.current_stream(x.device) if reduce_stream is not None else None
    parts: list[Tensor] = []
    layout: Layout = []
    kept: list[object] = []  # what the reduce stream reads stays referenced until it has joined
    for group, forward in zip(steps.groups, steps.forwards, strict=True):
        outputs, residuals = forward(x)
        if reduce_stream is not None:
            reduce_stream.wait_stream(main)
        with torch.cuda.stream(reduce_stream) if reduce_stream is not None else contextlib.nullcontext():
            parts.append(steps.reduce(outputs, x, residuals, top_k))
        kept += [x, outputs, residuals]
        for name, output in zip(group.names, outputs, strict=True):
            channels, height, width = output.shape[1:]
            layout.append((name, (channels, height, width), min(top_k, channels), 4 if group.residual else 3))
        x = outputs[-1]
    head = steps.head(model, x)
    if reduce_stream is not None:
        main.wait_stream(reduce_stream)
    if out is None:
        return torch.cat([head, *parts], 1), layout
    torch.cat([head, *parts], 1, out=out)
    return out, layout


def streamed_pipeline(model: InceptionResNetV2, x: Tensor, top_k: int = 8) -> tuple[Tensor, Layout]:
    """:func:`pipeline`'s packed numbers and layout, computed block by block: each block's output is
    reduced as soon as it exists and then let go. The CPU's way: nothing to overlap, and a small working
    set (no run of twenty outputs kept for one stacked reduction) keeps the memory traffic down."""
    parts, layout = [], []
    for name, block in model.blocks():
        if isinstance(block, InceptionResNetBlock):
            out, residual = block.forward_parts(x)
            reduced = reduce_block(out, x, residual, top_k)
        else:
            out = block(x)
            reduced = reduce_block(out, None, None, top_k)
        parts.append(torch.cat(reduced, 1))
        channels, height, width = out.shape[1:]
        layout.append((name, (channels, height, width), min(top_k, channels), reduced[-1].shape[1]))
        x = out
    return torch.cat([head_part(model, x), *parts], 1), layout


class CapturedPipeline:
    """:func:`pipeline` for one batch size, captured as a CUDA graph and replayed.

    The input, the packed output and a pinned host buffer are allocated once; a call copies the
    images in, replays every kernel of forward and reductions (two streams, one graph) in one
    launch, and copies the one packed buffer to the host. Not re-entrant: the engine serialises
    calls with a lock.
    """

    def __init__(
        self,
        model: InceptionResNetV2,
        batch_size: int,
        top_k: int,
        input_size: int,
        dtype: torch.dtype = torch.bfloat16,
        compile: bool = False,
        overlap: bool = True,
    ) -> None:
        device = next(model.parameters()).device
        self.input = torch.zeros(batch_size, 3, input_size, input_size, device=device)
        self.input = self.input.contiguous(memory_format=torch.channels_last)
        steps = PipelineSteps.compiled(model) if compile else PipelineSteps.eager(model)
        reduce_stream = torch.cuda.Stream(device) if overlap else None
        autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32)
        with torch.inference_mode(), autocast, _compile_limits():
            self.output, self.layout = pipeline(model, self.input, top_k)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(3):  # cuDNN picks its algorithms, compiled code loads, before capture
                    pipeline(model, self.input, top_k, steps, out=self.output, reduce_stream=reduce_stream)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # Other threads keep serving while an engine is captured (the default weights arriving,
            # a session picking other weights, a new batch size): "global" mode would fail their
            # calls, and this capture's on streams of its own.
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                pipeline(model, self.input, top_k, steps, out=self.output, reduce_stream=reduce_stream)
        self.host = torch.empty(self.output.shape, dtype=self.output.dtype, pin_memory=True)

    def __call__(self, x: Tensor) -> np.ndarray:
        self.input.copy_(x, non_blocking=True)
        self.graph.replay()
        self.host.copy_(self.output, non_blocking=True)
        torch.cuda.current_stream(self.input.device).synchronize()
        return self.host.numpy().copy()  # the pinned buffer is reused by the next call


@contextlib.contextmanager
def _compile_limits() -> Iterator[None]:
    """Let torch.compile keep one compiled version per group (the reduction and the group forward
    code are shared by every group, each with its own shapes), where its default stops at 8."""
    import torch._dynamo.config as dynamo

    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    with dynamo.patch(**{name: 64}):
        yield


class Engine:
    """One model on one device, shared read-only by every caller.

    The model is an inference copy (:func:`explorer.fastpath.inference_copy`: batch norms folded,
    each residual block's parallel 1x1 heads merged into one conv; the same block outputs from
    fewer kernels). On a GPU it runs channels-last in bf16 through a CUDA graph captured at
    start-up (the warm-up); on the CPU, eagerly in float32. Both run :func:`pipeline`.
    """

    def __init__(
        self,
        model: InceptionResNetV2,
        weights: WeightsInfo,
        device: str = "auto",
        top_k: int = 8,
        preprocessing: Preprocessing = TF_IN1K,
        gpu_dtype: torch.dtype = torch.bfloat16,
        compile: bool | None = None,
        progress: Callable[[str], None] | None = None,
        cpu_dtype: torch.dtype | None = None,
    ) -> None:
        self.device, note = pick_device(device)
        self.notes: tuple[str, ...] = (note,) if note else ()
        self.weights = weights
        self.top_k = top_k
        self.preprocessing = preprocessing
        self.labels = imagenet_labels() if model.config.num_classes == 1000 else None
        # Inference only: no parameter needs a gradient (Grad-CAM differentiates activations).
        fast = inference_copy(model).requires_grad_(False)
        # The model as built, float32, for the inside of a block (its units, batch norms and all).
        self.source = model.eval().requires_grad_(False).to(self.device)
        # On a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, read off the CPU), bf16 weights
        # channels-last run the forward in about half the time of float32; elsewhere float32.
        self.cpu_dtype = cpu_dtype or (torch.bfloat16 if cpu_bf16_native() and precision_allowed() else torch.float32)
        if self.device.type == "cuda":
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
        if self.device.type == "cuda":
            if progress:
                what = "Compiling and capturing" if self.compile else "Capturing"
                progress(f"{what} the GPU pipeline (warm-up, once)...")
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
            self.device = torch.device("cpu")
            self.notes += (f"{reason}: running on the CPU instead",)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

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
        if batch_size not in self._graphs:
            size = self.preprocessing.input_size
            try:
                graph = CapturedPipeline(self.model, batch_size, self.top_k, size, self.gpu_dtype, self.compile)
            except Exception as error:  # compilers fail in many ways; plain kernels always work
                if not self.compile:
                    raise
                self.compile = False
                self.notes += (f"torch.compile failed ({type(error).__name__}); running uncompiled kernels",)
                graph = CapturedPipeline(self.model, batch_size, self.top_k, size, self.gpu_dtype, False)
            self._graphs[batch_size] = graph
        return self._graphs[batch_size]

    def run(self, image: Image.Image, notes: Sequence[str] = ()) -> InferenceResult:
        """Top-5 and every block's maps and statistics for one RGB image."""
        return self.run_batch([image], [notes])[0]

    def run_batch(
        self, images: Sequence[Image.Image], notes: Sequence[Sequence[str]] | None = None
    ) -> list[InferenceResult]:
        """:meth:`run` for several images in one pass."""
        start = time.perf_counter()
        prepared = [self.prepare(image) for image in images]
        x = torch.cat([tensor for _, tensor in prepared])
        ready = time.perf_counter()
        if self.device.type == "cuda":
            try:
                with self._lock:
                    captured = self._captured(len(images))
                    host = captured(x.to(memory_format=torch.channels_last))
                    layout = captured.layout
            except torch.cuda.OutOfMemoryError:
                self.fall_back_to_cpu("the GPU ran out of memory")
                return self.run_batch(images, notes)
            timings = {"preprocess": ready - start, "gpu (forward, maps, copy)": time.perf_counter() - ready}
        else:
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
        with self._lock, torch.inference_mode():
            return block_inputs(self.source, x.to(self.device))

    def inside(self, inputs: dict[str, Tensor], node: str) -> tuple[InsideMaps, ...]:
        """Every output inside a block (``repeat_1.0``) or inside one of its units (``repeat_1.0.branch1.1``),
        in forward order, from :meth:`block_inputs`; :class:`ValueError` for anything else."""
        block = next((b for b in inputs if node == b or node.startswith(b + ".")), None)
        if block is None:
            raise ValueError(f"unknown block {node!r}; blocks are: {', '.join(inputs)}")
        with self._lock, torch.inference_mode():
            if node == block:
                parts = inside_tensors(self.source.get_submodule(block), inputs[block], block)
            else:
                parts = unit_tensors(self.source, block, inputs[block], node)
            return reduce_inside(parts, self.top_k)

    def grad_cam(self, image: Image.Image, block: str, class_index: int | None = None) -> GradCam:
        """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block``.

        The gradient is taken with respect to the block's output only (``torch.autograd.grad``),
        so nothing is written to the shared model's parameters.
        """
        _, x = self.prepare(image)
        x = x.to(self.device).requires_grad_(True)
        with torch.enable_grad(), self._lock:  # the model as built, float32, off the captured graph
            logits, intermediates = self.source.forward_intermediates(x)
            if block not in intermediates:
                raise ValueError(f"unknown block {block!r}")
            index = int(logits[0].argmax()) if class_index is None else class_index
            if not 0 <= index < logits.shape[1]:
                raise ValueError(f"class {index} is outside 0..{logits.shape[1] - 1}")
            activation = intermediates[block]
            (gradient,) = torch.autograd.grad(logits[0, index], activation)
        with torch.no_grad():
            weights = gradient.mean((2, 3), keepdim=True)
            cam = F.relu((weights * activation).sum(1, keepdim=True))
            size = self.preprocessing.input_size
            upsampled = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
            peak = upsampled.max()
            normalised = upsampled / peak if peak > 0 else upsampled
            probability = float(logits[0].float().softmax(0)[index])
        return GradCam(
            block=block,
            class_index=index,
            label=self.label(index),
            probability=probability,
            cam=cam[0, 0].float().cpu().numpy(),
            heatmap=normalised.float().cpu().numpy(),
        )


@dataclass(frozen=True)
class GradCam:
    block: str
    class_index: int
    label: str
    probability: float
    cam: np.ndarray  # (h, w) at the block's resolution, unnormalised, >= 0
    heatmap: np.ndarray  # (input_size, input_size), scaled to [0, 1]
