"""Feature visualisations kept once per server: each channel's image computed once, however many ask for it.

Keyed by everything an image depends on (the engine's identity: network, weights, device, precision; the node,
the objective, the channel, the settings). Asking for several channels computes the missing ones as one batch;
a request for a channel another thread is computing waits for it instead of computing it again. The values
kept are immutable (PNG bytes and a float), so readers share nothing that can change under them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from explorer.channels.features.visualise import Settings, visualise
from explorer.nets import InceptionNetwork
from explorer.runtime.memory import MemoryBudget


@dataclass(frozen=True)
class ChannelImage:
    png: bytes
    value: float  # the objective on the final image


class Gallery:
    """A server's visualisations, at most ``capacity`` of them (the oldest go first)."""

    def __init__(self, capacity: int = 20_000, memory: MemoryBudget | None = None) -> None:
        self.capacity = capacity
        self._done: OrderedDict[tuple, ChannelImage] = OrderedDict()
        self._used: dict[tuple, float] = {}
        self._memory = memory  # the server's budget, over its engines and other caches too
        if memory is not None:
            memory.join(self)
        self._running: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def known(
        self, identity: Hashable, node: str, objective: str, settings: Settings, channel: int
    ) -> ChannelImage | None:
        key = (identity, node, objective, settings, channel)
        with self._lock:
            if key in self._done:
                self._used[key] = time.monotonic()
            return self._done.get(key)

    def entries(self) -> list[tuple[float, int, Hashable]]:
        with self._lock:
            return [(self._used.get(key, 0.0), len(image.png) + 64, key) for key, image in self._done.items()]

    def drop(self, key: Hashable) -> bool:
        with self._lock:
            self._used.pop(key, None)
            return self._done.pop(key, None) is not None

    def images(
        self,
        model: InceptionNetwork,
        identity: Hashable,
        node: str,
        channels: Sequence[int],
        settings: Settings,
        device: torch.device | str,
        objective: str = "channel",
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, ChannelImage]:
        """Each channel's image: those kept, those another thread is making (waited for), the rest made here."""
        keys = {c: (identity, node, objective, settings, c) for c in dict.fromkeys(channels)}
        with self._lock:
            mine = [c for c, key in keys.items() if key not in self._done and key not in self._running]
            waits = [self._running[key] for c, key in keys.items() if key in self._running]
            for c in mine:
                self._running[keys[c]] = threading.Event()
        try:
            if mine:
                found = visualise(model, objective, node, mine, settings, device, progress)
                with self._lock:
                    for channel, pixels, value in zip(found.channels, found.images, found.final, strict=True):
                        self._done[keys[channel]] = ChannelImage(_png(pixels), float(value))
                        self._used[keys[channel]] = time.monotonic()
                    while len(self._done) > self.capacity:
                        self._used.pop(self._done.popitem(last=False)[0], None)
        finally:
            with self._lock:
                for c in mine:
                    self._running.pop(keys[c]).set()
        for event in waits:
            event.wait()
        with self._lock:
            found = {c: self._done[key] for c, key in keys.items() if key in self._done}
        if self._memory is not None and mine:
            self._memory.enforce()
        return found


def _png(pixels) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
