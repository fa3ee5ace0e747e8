"""The class probabilities of many images at once, on the engine's inference copy: what faithfulness metrics
run by the hundred (a deletion curve of 50 steps is 51 images).

On a GPU the forward is captured as a CUDA graph per batch size (rounded up to a multiple of 8, at most 128 a
replay) and replayed: a forward of the network is about 800 kernels, and launching them one by one costs more
than computing them at this size. A few graphs are kept per engine, made on first use, dropped with it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from explorer.runtime.capture import GPU

if TYPE_CHECKING:
    from explorer.runtime.engine import Engine

GPU_CHUNK = 128
CPU_CHUNK = 16  # a CPU gains nothing from more at once, and holds their maps
KEPT = 3  # graphs an engine keeps: each holds its activations' memory

_graphs: weakref.WeakKeyDictionary[Engine, OrderedDict[int, CapturedSoftmax]] = weakref.WeakKeyDictionary()
_graphs_lock = threading.Lock()


class CapturedSoftmax:
    """``model(x).float().softmax(1)`` for one batch size, captured once and replayed. Not re-entrant: callers
    hold the engine's lock."""

    def __init__(self, model: nn.Module, batch_size: int, input_size: int, dtype: torch.dtype) -> None:
        device = next(model.parameters()).device
        autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32)
        self.input = torch.zeros(batch_size, 3, input_size, input_size, device=device)
        self.input = self.input.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast:
            with GPU.work():
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(3):  # cuDNN picks its algorithms before the capture
                        model(self.input).float().softmax(1)
                torch.cuda.current_stream(device).wait_stream(side)
                torch.cuda.synchronize(device)
            self.graph = torch.cuda.CUDAGraph()
            with GPU.capture(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.output = model(self.input).float().softmax(1)

    def __call__(self, x: Tensor) -> Tensor:
        """Rows of ``x`` (at most the batch size; the rest of the batch is left as it was: rows do not mix)."""
        self.input[: len(x)].copy_(x)
        self.graph.replay()
        return self.output[: len(x)].clone()


def _captured(engine: Engine, batch_size: int) -> CapturedSoftmax:
    with _graphs_lock:
        kept = _graphs.setdefault(engine, OrderedDict())
        if batch_size in kept:
            kept.move_to_end(batch_size)
            return kept[batch_size]
    graph = CapturedSoftmax(engine.model, batch_size, engine.config.input_size, engine.gpu_dtype)
    with _graphs_lock:
        kept[batch_size] = graph
        while len(kept) > KEPT:
            kept.popitem(last=False)
    return graph


def probabilities(engine: Engine, x: Tensor, chunk: int | None = None) -> Tensor:
    """The head's softmax (N, classes), float32 on the CPU, for a batch of normalised inputs (N, 3, H, W):
    the inference copy in the engine's precision, ``chunk`` images a forward (a CUDA graph's replay on a GPU)."""
    gpu = engine.device.type == "cuda"
    chunk = chunk or (GPU_CHUNK if gpu else CPU_CHUNK)
    dtype = torch.float32 if gpu else engine.cpu_dtype  # on a GPU the weights stay float32 under bf16 autocast
    out = []
    with engine._lock:
        for first in range(0, len(x), chunk):
            part = x[first : first + chunk].to(engine.device, dtype, memory_format=torch.channels_last)
            if gpu:
                graph = _captured(engine, -(-len(part) // 8) * 8)  # captured outside the gate, which it waits for
                with engine.gate(), torch.inference_mode():
                    out.append(graph(part))
            else:
                with torch.inference_mode():
                    out.append(engine.model(part).float().softmax(1))
        return torch.cat(out).cpu()
