"""Each augmentation draws its parameters per image, and only from the passed generator."""

import pytest
import torch
import torch.nn.functional as F

from trainer.augment import (
    augment,
    color_jitter,
    hue_rotate,
    random_crop,
    random_flip,
    random_gaussian_blur,
    to_float,
)
from trainer.config import TrainConfig

N = 64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def same_image_batch() -> torch.Tensor:
    """N copies of one random colour image: any difference between outputs is augmentation."""
    image = torch.randint(0, 256, (1, 3, 32, 32), generator=gen(123), dtype=torch.uint8)
    return image.expand(N, -1, -1, -1).contiguous()


def distinct(batch: torch.Tensor) -> int:
    return len({tuple(x.flatten().tolist()) for x in batch})


def roughness(batch: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal neighbours, per image."""
    return (batch[..., 1:] - batch[..., :-1]).abs().mean(dim=(1, 2, 3))


def test_crop_gives_each_image_its_own_window_of_the_padded_image(same_image_batch):
    out = random_crop(same_image_batch, 4, gen())
    assert out.shape == same_image_batch.shape and out.dtype == torch.uint8
    padded = F.pad(same_image_batch[0], (4, 4, 4, 4))
    windows = {
        (dy, dx): padded[:, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)
    }
    offsets = []
    for image in out:
        match = [key for key, window in windows.items() if torch.equal(window, image)]
        assert len(match) == 1
        offsets.append(match[0])
    assert len(set(offsets)) > N // 4  # 81 possible offsets: many different ones


def test_flip_mirrors_some_images_of_a_batch_and_not_others(same_image_batch):
    out = random_flip(same_image_batch, gen())
    image = same_image_batch[0]
    flipped = [torch.equal(x, image.flip(-1)) for x in out]
    kept = [torch.equal(x, image) for x in out]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < N


def test_blur_draws_sigma_per_image(same_image_batch):
    x = to_float(same_image_batch)
    out = random_gaussian_blur(x, 0.5, 2.0, 1.0, gen())
    assert distinct(out) == N
    # More blur, less detail: every output is smoother than the input.
    assert (roughness(out) < roughness(x)).all()


def test_blur_probability_leaves_other_images_untouched(same_image_batch):
    x = to_float(same_image_batch)
    out = random_gaussian_blur(x, 0.5, 2.0, 0.5, gen())
    untouched = [torch.equal(o, x[0]) for o in out]
    assert 0 < sum(untouched) < N
    assert torch.equal(random_gaussian_blur(x, 0.5, 2.0, 0.0, gen()), x)


@pytest.mark.parametrize("part", ["brightness", "contrast", "saturation", "hue"])
def test_each_colour_jitter_factor_is_drawn_per_image(same_image_batch, part):
    x = to_float(same_image_batch)
    strengths = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    strengths[part] = 0.3
    out = color_jitter(x, generator=gen(), **strengths)
    assert out.min() >= 0 and out.max() <= 1
    assert distinct(out) == N


def test_hue_rotation_keeps_luma_and_turns_full_circle():
    x = torch.rand(4, 3, 8, 8, generator=gen())
    # Stays inside the RGB cube without clamping for small turns on mid-range colours.
    mid = 0.25 + 0.5 * x
    turned = hue_rotate(mid, torch.full((4,), 0.05))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((turned * luma).sum(1), (mid * luma).sum(1), atol=1e-5)
    assert torch.allclose(hue_rotate(mid, torch.ones(4)), mid, atol=1e-5)


@pytest.mark.parametrize("augmentation", ["none", "crop_flip", "crop_flip_blur_color"])
def test_augmentation_is_deterministic_under_a_seed(same_image_batch, augmentation):
    config = TrainConfig(augmentation=augmentation)
    a = augment(same_image_batch, config, gen(7))
    b = augment(same_image_batch, config, gen(7))
    assert a.dtype == torch.float32 and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    if augmentation != "none":
        assert not torch.equal(a, augment(same_image_batch, config, gen(8)))
        assert distinct(a) > N // 2


def test_none_only_scales_to_unit_range(same_image_batch):
    out = augment(same_image_batch, TrainConfig(augmentation="none"), gen())
    assert torch.equal(out, same_image_batch.float() / 255)


def test_crop_and_flip_work_on_float_batches_too(same_image_batch):
    x = to_float(same_image_batch)
    a = random_flip(random_crop(x, 4, gen(3)), gen(4))
    b = to_float(random_flip(random_crop(same_image_batch, 4, gen(3)), gen(4)))
    assert torch.equal(a, b)
