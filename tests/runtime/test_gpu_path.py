"""The GPU path's own code, run on the CPU: preprocessing on the device and the gate that keeps a CUDA
graph's capture alone. (The captured pipeline itself is checked on the lent GPU: benchmarks/bench_gpu.py.)"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.runtime.capture import GpuGate
from explorer.runtime.images import load_image
from explorer.runtime.preprocessing import crop_for_network, crop_on_device, normalise, to_tensor

CPU = torch.device("cpu")


def test_the_devices_crop_gives_pillows_pixels(sample_paths):
    images = [load_image(p).image for p in sample_paths]
    portrait = images[0].transpose(Image.Transpose.ROTATE_90)
    small = images[1].resize((120, 90))  # enlarged, not reduced: the filter without antialiasing
    for image in [*images, portrait, small]:
        expected = np.asarray(crop_for_network(image), dtype=np.int16)
        got = crop_on_device(image, CPU)
        assert got is not None and got.dtype == torch.uint8 and got.shape == (299, 299, 3)
        difference = np.abs(got.numpy().astype(np.int16) - expected)
        # The same bicubic filter over the whole image instead of the kept part: a few levels at sharp
        # edges, a fraction of one on average.
        assert difference.max() <= 10, image.size
        assert difference.mean() <= 0.25, image.size


def test_an_elongated_image_is_left_to_pillow():
    strip = Image.new("RGB", (6000, 300), (200, 30, 30))  # resized whole it would be 20 times the crop
    assert crop_on_device(strip, CPU) is None


def test_normalising_a_batch_is_to_tensors_arithmetic(sample_paths):
    crops = [crop_for_network(load_image(p).image) for p in sample_paths[:3]]
    batch = torch.stack([torch.from_numpy(np.asarray(c, dtype=np.uint8).copy()) for c in crops])
    expected = torch.cat([to_tensor(c) for c in crops])
    torch.testing.assert_close(normalise(batch), expected, rtol=0, atol=0)
    assert normalise(batch).min() >= -1 and normalise(batch).max() <= 1


def test_the_gate_keeps_a_capture_alone_and_lets_work_run_side_by_side():
    gate = GpuGate()
    events: list[str] = []
    log = threading.Lock()

    def note(what: str) -> None:
        with log:
            events.append(what)

    inside_work = threading.Barrier(3, timeout=10)

    def work(name: str, hold: float) -> None:
        with gate.work():
            note(f"{name} in")
            inside_work.wait()  # both workers are in at once: work is shared
            time.sleep(hold)
            note(f"{name} out")

    def capture() -> None:
        with gate.capture():
            note("capture in")
            time.sleep(0.1)
            note("capture out")

    workers = [threading.Thread(target=work, args=(f"w{i}", 0.3)) for i in range(2)]
    for thread in workers:
        thread.start()
    inside_work.wait()
    capturer = threading.Thread(target=capture)
    capturer.start()
    time.sleep(0.1)  # the capture is waiting now; work asked for after it waits behind it
    late = threading.Thread(target=work_late, args=(gate, note))
    late.start()
    for thread in [*workers, capturer, late]:
        thread.join(10)
        assert not thread.is_alive()
    capture_in, capture_out = events.index("capture in"), events.index("capture out")
    assert events.index("w0 out") < capture_in and events.index("w1 out") < capture_in  # it waited for both
    assert capture_out == capture_in + 1  # nothing ran during it
    assert events.index("late in") > capture_out  # a waiting capture goes first


def work_late(gate: GpuGate, note) -> None:
    with gate.work():
        note("late in")


def capture_once(gate: GpuGate, done: threading.Event) -> None:
    with gate.capture():
        done.set()


@pytest.mark.parametrize("exit_with", [None, RuntimeError])
def test_the_gate_is_released_when_work_fails(exit_with):
    gate = GpuGate()
    try:
        with gate.work():
            if exit_with:
                raise exit_with("a failed kernel")
    except RuntimeError:
        pass
    done = threading.Event()
    threading.Thread(target=capture_once, args=(gate, done)).start()
    assert done.wait(5)
