"""The GPU pipeline captured once as a CUDA graph (optionally of torch.compile'd kernels) and replayed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from explorer.nets import InceptionNetwork
from explorer.runtime.pipeline import PipelineSteps, compile_limits, pipeline


class GpuGate:
    """Keeps a CUDA graph's capture alone on the GPU: other threads' work (another session's images,
    Grad-CAM, a block's inside, another engine compiling) runs side by side, but never during a capture,
    which any of it could invalidate or be failed by. Captures take a second and are rare: when an engine
    is built, a batch size is first seen, a compiled graph is swapped in. A waiting capture goes first.
    Not re-entrant: work must not ask for a capture, nor a capture for work.
    """

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._working = 0
        self._capturing = False
        self._waiting = 0

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        with self._state:
            self._state.wait_for(lambda: not self._capturing and not self._waiting)
            self._working += 1
        try:
            yield
        finally:
            with self._state:
                self._working -= 1
                self._state.notify_all()

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        with self._state:
            self._waiting += 1
            self._state.wait_for(lambda: not self._capturing and not self._working)
            self._waiting -= 1
            self._capturing = True
        try:
            yield
        finally:
            with self._state:
                self._capturing = False
                self._state.notify_all()


#: The process's one gate: every engine's GPU work goes through it.
GPU = GpuGate()


class CapturedPipeline:
    """:func:`pipeline` for one batch size, captured as a CUDA graph and replayed.

    The input, the packed output and a pinned host buffer are allocated once; a call copies the
    images in, replays every kernel of forward and reductions (two streams, one graph) in one
    launch, and copies the one packed buffer to the host. Not re-entrant: the engine serialises
    calls with a lock.
    """

    def __init__(
        self,
        model: InceptionNetwork,
        batch_size: int,
        top_k: int,
        input_size: int,
        dtype: torch.dtype = torch.bfloat16,
        compile: bool = False,
        overlap: bool = True,
        steps: PipelineSteps | None = None,
    ) -> None:
        device = next(model.parameters()).device
        if steps is None:  # given: compiled ahead of time (explorer.runtime.ahead)
            steps = PipelineSteps.compiled(model) if compile else PipelineSteps.eager(model)
        autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32)
        # A normal tensor, not an inference one: calls copy into it outside inference mode.
        self.input = torch.zeros(batch_size, 3, input_size, input_size, device=device)
        self.input = self.input.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast, compile_limits():
            with GPU.work():  # alongside other sessions' work; compiling happens here, on the first runs
                reduce_stream = torch.cuda.Stream(device) if overlap else None
                self.output, self.layout = pipeline(model, self.input, top_k)
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(3):  # cuDNN picks its algorithms, compiled code loads, before capture
                        pipeline(model, self.input, top_k, steps, out=self.output, reduce_stream=reduce_stream)
                torch.cuda.current_stream(device).wait_stream(side)
                torch.cuda.synchronize(device)
            self.graph = torch.cuda.CUDAGraph()
            with GPU.capture(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                pipeline(model, self.input, top_k, steps, out=self.output, reduce_stream=reduce_stream)
        self.host = torch.empty(self.output.shape, dtype=self.output.dtype, pin_memory=True)

    def __call__(self, x: Tensor) -> np.ndarray:
        self.input.copy_(x, non_blocking=True)
        self.graph.replay()
        self.host.copy_(self.output, non_blocking=True)
        torch.cuda.current_stream(self.input.device).synchronize()
        return self.host.numpy().copy()  # the pinned buffer is reused by the next call
