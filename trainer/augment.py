"""Batch augmentation on the training device, with parameters drawn per image.

torchvision's transforms applied to a batch tensor draw one crop, one flip, one blur for the
whole batch; the study's notebook applied them per image in DataLoader workers. Here every
image of a batch gets its own crop offset, flip, blur sigma and jitter factors, drawn from
the passed torch.Generator (on the batch's device), in vectorised tensor code: no Python loop
over images. Each function consumes a fixed number of draws per call whatever the outcome,
so a run is reproducible from the generator's state alone.

Inputs are N x C x H x W, uint8 (0..255) or float (0..1). Crop and flip keep the dtype (on
uint8 they move 4x fewer bytes); blur and jitter work on floats in 0..1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # only for annotations: these modules run without pydantic
    from trainer.config import TrainConfig


CROP_PADDING = 4

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ; a hue shift is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)


def augment(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The config's augmentation of one training batch; returns floats in 0..1."""
    x = images
    if config.augmentation in ("crop_flip", "crop_flip_blur_color"):
        x = random_crop(x, CROP_PADDING, generator)
        x = random_flip(x, generator)
    x = to_float(x)
    if config.augmentation == "crop_flip_blur_color":
        x = random_gaussian_blur(
            x, config.blur_sigma_min, config.blur_sigma_max, config.blur_prob, generator
        )
        x = color_jitter(
            x,
            config.jitter_brightness,
            config.jitter_contrast,
            config.jitter_saturation,
            config.jitter_hue,
            generator,
        )
    return x


def to_float(x: torch.Tensor) -> torch.Tensor:
    # The default dtype (float32 unless a caller changed it): float64 tests train in float64.
    dtype = torch.get_default_dtype()
    return x.to(dtype).div_(255) if x.dtype == torch.uint8 else x.to(dtype)


def _uniform(n: int, low: float, high: float, like: torch.Tensor, gen: torch.Generator):
    u = torch.rand(n, generator=gen, device=like.device)
    return low + (high - low) * u


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` and cut a random H x W window per image (one gather)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # n x h
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # n x w
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_gaussian_blur(
    x: torch.Tensor,
    sigma_min: float,
    sigma_max: float,
    prob: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Blur each image with probability `prob`, sigma drawn uniformly in [sigma_min, sigma_max].

    Separable: one horizontal and one vertical depthwise conv whose groups are the n*c
    image channels, each with its own kernel (an identity kernel for unblurred images).
    Kernel radius ceil(3 * sigma_max), reflect padding, as torchvision's gaussian_blur.
    """
    n, c, h, w = x.shape
    apply = torch.rand(n, generator=generator, device=x.device) < prob
    sigma = _uniform(n, sigma_min, sigma_max, x, generator)
    radius = min(math.ceil(3 * sigma_max), h - 1, w - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)
    identity = (t == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(apply[:, None], kernel, identity).repeat_interleave(c, dim=0)
    k = kernel.shape[1]
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, h, w)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def color_jitter(
    x: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per-image brightness, contrast, saturation factors in 1 +- strength, hue in +- hue turns.

    Same blends as torchvision's ColorJitter (clamped to 0..1 after each), in a fixed order
    (brightness, contrast, saturation, hue) rather than a random one. Hue is a rotation of the
    YIQ chroma plane, which keeps luma and approximates torchvision's HSV hue shift.
    """
    n = x.shape[0]
    b = _uniform(n, 1 - brightness, 1 + brightness, x, generator)[:, None, None, None]
    c = _uniform(n, 1 - contrast, 1 + contrast, x, generator)[:, None, None, None]
    s = _uniform(n, 1 - saturation, 1 + saturation, x, generator)[:, None, None, None]
    turns = _uniform(n, -hue, hue, x, generator)

    x = (x * b).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    gray = _gray(x)
    x = ((x - gray) * s + gray).clamp(0, 1)
    return hue_rotate(x, turns).clamp(0, 1)


def hue_rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by its `turns` (fraction of a full circle) in YIQ space.

    The per-image matrix (RGB->YIQ, rotate I/Q by angle a, back) equals P + cos(a) Q +
    sin(a) S for three constant matrices, so only elementwise work happens per batch.
    """
    p, q, s = _hue_basis(x.device, x.dtype)
    angle = (2 * math.pi) * turns
    matrix = p + torch.cos(angle)[:, None, None] * q + torch.sin(angle)[:, None, None] * s
    return torch.einsum("nij,njhw->nihw", matrix, x)


_HUE_BASIS: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}


def _hue_basis(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    # Built once per device: a host-to-GPU copy per batch would stall the stream.
    key = (device, dtype)
    if key not in _HUE_BASIS:
        to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
        from_yiq = torch.linalg.inv(to_yiq)
        a, b = from_yiq, to_yiq
        p = torch.outer(a[:, 0], b[0])
        q = torch.outer(a[:, 1], b[1]) + torch.outer(a[:, 2], b[2])
        s = torch.outer(a[:, 2], b[1]) - torch.outer(a[:, 1], b[2])
        _HUE_BASIS[key] = tuple(m.to(device=device, dtype=dtype) for m in (p, q, s))
    return _HUE_BASIS[key]
