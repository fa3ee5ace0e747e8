"""The image feature visualisation optimises: a scaled Fourier spectrum in a decorrelated colour space (Lucid's
parameterisation, Olah et al., Distill 2017, "Feature Visualization").

Optimising pixels directly gives high-frequency noise that excites a channel without showing anything; in this
basis each frequency is scaled by 1/f, so that every frequency learns at the same rate, and colours are mixed
by the square root of ImageNet's colour covariance, so that a step changes luminance and colour alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: The square root of ImageNet's RGB covariance, by its singular vectors (Lucid's color_correlation_svd_sqrt).
COLOUR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


def spectrum_scale(size: int, decay: float = 1.0) -> Tensor:
    """1/f for each frequency of an rfft2 of a ``size``-square image, times sqrt(pixels): (size, size // 2 + 1)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    frequencies = torch.sqrt(fx * fx + fy * fy)
    return size / torch.clamp(frequencies, min=1.0 / size) ** decay


class FourierImage(nn.Module):
    """Images of ``size`` pixels, one per seed, parameterised as spectra; calling it gives RGB in [0, 1],
    (B, 3, size, size). Each image starts from its own seed, so that one in a batch starts as it would alone."""

    def __init__(self, seeds: list[int], size: int, sd: float = 0.01, decay: float = 1.0) -> None:
        super().__init__()
        shape = (3, size, size // 2 + 1, 2)
        starts = [torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sd for seed in seeds]
        self.spectrum = nn.Parameter(torch.stack(starts))
        self.register_buffer("scale", spectrum_scale(size, decay))
        colours = COLOUR_CORRELATION_SQRT / COLOUR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("colours", colours)
        self.size = size

    def forward(self) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size)) / 4.0  # Lucid's /4: a calm start
        rgb = torch.einsum("bchw,dc->bdhw", decorrelated, self.colours)
        return torch.sigmoid(rgb)
