"""JPEGs decoded on the GPU (nvJPEG, through torchvision.io) and cropped there, for the index's batches."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from explorer.channels.index.folder import Decoded
from explorer.runtime.preprocessing import Preprocessing, crop_pixels


def gpu_crops(jpegs: list[Decoded], device: torch.device, preprocessing: Preprocessing) -> list[torch.Tensor | None]:
    """Plain JPEGs decoded by the GPU (nvJPEG, through torchvision.io) and cropped there; None for any it refuses.

    The decoder gets a stream of its own. nvJPEG's hardware decoder writes its outputs before the work already
    queued on its stream has run (pytorch/vision#9606), so on the main stream it can be handed memory that
    queued kernels still read (seen here: wrong maxima, then an illegal memory access). On its own stream
    nothing else is queued, and ``record_stream`` keeps the main stream's use of each output safe from reuse.
    """
    if not jpegs:
        return []
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(item.jpeg), dtype=torch.uint8) for item in jpegs]
    main, side = torch.cuda.current_stream(device), _decode_stream(device)
    with _DECODING, torch.cuda.stream(side):  # one decode at a time on that stream, whoever asks
        side.synchronize()
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one damaged file fails the batch: each on its own, to find which
            images = [_decoded_or_none(decode_jpeg, one, device) for one in data]
    main.wait_stream(side)
    for image in images:
        if image is not None:
            image.record_stream(main)
    return [crop_pixels(image, preprocessing) if image is not None else None for image in images]


def _decoded_or_none(decode_jpeg: Callable, data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None


_DECODE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}
_DECODING = threading.Lock()


def _decode_stream(device: torch.device) -> torch.cuda.Stream:
    if device not in _DECODE_STREAMS:
        _DECODE_STREAMS[device] = torch.cuda.Stream(device)
    return _DECODE_STREAMS[device]
