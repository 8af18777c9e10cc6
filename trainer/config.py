"""The one validated config of an experiment.

Every knob the study varies is a field here. This module imports neither torch nor
torchvision: the web process validates configs with it and must stay light.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Dataset = Literal["cifar10", "fashion_mnist", "digits"]
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
Augmentation = Literal["none", "crop_flip", "crop_flip_blur_color"]
Precision = Literal["auto", "fp32", "bf16"]

DATASETS: tuple[str, ...] = Dataset.__args__
ACTIVATIONS: tuple[str, ...] = Activation.__args__
AUGMENTATIONS: tuple[str, ...] = Augmentation.__args__
REPORT_LR_RATIOS: tuple[str, ...] = ("2:1:1", "5:3:2", "5:4:1")

_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_lr_ratio(text: str) -> tuple[int, int, int]:
    """'5:4:1' -> (5, 4, 1); raises ValueError on anything else."""
    match = _RATIO.match(text)
    if not match:
        raise ValueError("must be three positive integers written like 2:1:1")
    parts = tuple(int(p) for p in match.groups())
    if any(p <= 0 for p in parts):
        raise ValueError("each of the three parts must be a positive integer")
    if any(p > 1000 for p in parts):
        raise ValueError("each part must be at most 1000")
    return parts  # type: ignore[return-value]


class TrainConfig(BaseModel):
    """One experiment. Defaults follow the notebook the report builds on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Dataset = Field("cifar10", description="Dataset to train and test on.")
    activation: Activation = Field("relu", description="Activation used wherever ReLU stood.")
    leaky_relu_slope: float = Field(
        0.01, gt=0, lt=1, description="Negative slope of LeakyReLU (only used by leaky_relu)."
    )
    lr_ratio: str = Field(
        "2:1:1",
        description="Lengths of the lr, lr/10, lr/100 phases as a ratio of all epochs.",
        examples=["2:1:1", "5:3:2", "5:4:1"],
    )
    augmentation: Augmentation = Field(
        "crop_flip", description="none; crop (pad 4) + flip; crop + flip + blur + colour jitter."
    )
    epochs: int = Field(200, ge=1, le=1000, description="Training epochs.")
    batch_size: int = Field(128, ge=1, le=4096, description="Training batch size.")
    lr: float = Field(0.1, gt=0, le=10, description="Initial learning rate of SGD.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(2e-4, ge=0, le=0.1, description="SGD weight decay.")
    width: int = Field(
        64, ge=1, le=256, description="Base channels of ResNet18 (64 = the paper's model)."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed for weights and data.")
    normalize: bool = Field(False, description="Standardise inputs by per-channel mean/std.")
    blur_sigma_min: float = Field(
        0.1, gt=0, le=5, description="Smallest Gaussian blur sigma (pixels), per image."
    )
    blur_sigma_max: float = Field(
        1.0, gt=0, le=5, description="Largest Gaussian blur sigma (pixels), per image."
    )
    blur_prob: float = Field(0.5, ge=0, le=1, description="Chance that an image is blurred.")
    jitter_brightness: float = Field(
        0.2, ge=0, le=1, description="Brightness factor drawn from 1 ± this, per image."
    )
    jitter_contrast: float = Field(
        0.2, ge=0, le=1, description="Contrast factor drawn from 1 ± this, per image."
    )
    jitter_saturation: float = Field(
        0.2, ge=0, le=1, description="Saturation factor drawn from 1 ± this, per image."
    )
    jitter_hue: float = Field(
        0.05, ge=0, le=0.5, description="Hue shift drawn from ± this (turns), per image."
    )
    precision: Precision = Field(
        "auto", description="auto: bf16 autocast where the device supports it, else fp32."
    )
    compile: bool = Field(
        True,
        description="torch.compile the model on CUDA (ignored on the CPU, where it does not pay).",
    )
    train_limit: int = Field(
        0,
        ge=0,
        le=10**9,
        description="Use only the first N training images (0 = all); for smoke runs.",
    )
    test_limit: int = Field(
        0, ge=0, le=10**9, description="Use only the first N test images (0 = all); for smoke runs."
    )

    @field_validator("lr_ratio")
    @classmethod
    def _check_ratio(cls, value: str) -> str:
        return ":".join(str(p) for p in parse_lr_ratio(value))

    @field_validator("blur_sigma_max")
    @classmethod
    def _check_blur_range(cls, value: float, info: ValidationInfo) -> float:
        # A field validator (not a model one), so the error names blur_sigma_max.
        low = info.data.get("blur_sigma_min")
        if low is not None and value < low:
            raise ValueError("blur_sigma_max must not be below blur_sigma_min")
        return value

    @property
    def lr_phases(self) -> tuple[int, int, int]:
        return parse_lr_ratio(self.lr_ratio)


# The factors of the report's grid, in the report's order.
REPORT_GRID: dict[str, list[str]] = {
    "lr_ratio": list(REPORT_LR_RATIOS),
    "activation": ["sigmoid", "tanh", "relu", "leaky_relu"],
    "augmentation": ["none", "crop_flip_blur_color", "crop_flip"],
}


# What members of one pack must share: the packed network's shape and data, its batch, its
# number format and how its forward runs.
PACK_FIELDS = (
    "dataset",
    "width",
    "batch_size",
    "precision",
    "normalize",
    "train_limit",
    "test_limit",
    "compile",
)


def pack_key(config: TrainConfig) -> tuple[tuple[str, object], ...]:
    """(field, value) pairs that must be equal for configs to train in one pack."""
    return tuple((name, getattr(config, name)) for name in PACK_FIELDS)


def check_packable(configs: Sequence[TrainConfig]) -> None:
    """Raise ValueError, naming the fields, if the configs cannot share a pack."""
    if not configs:
        raise ValueError("train_packed needs at least one config")
    first = pack_key(configs[0])
    for i, config in enumerate(configs[1:], start=1):
        diffs = [
            f"{name} ({a!r} vs {b!r})"
            for (name, a), (_, b) in zip(first, pack_key(config))
            if a != b
        ]
        if diffs:
            raise ValueError(
                f"config {i} cannot be packed with config 0: it differs in "
                + ", ".join(diffs)
                + ". Packed runs must share "
                + ", ".join(PACK_FIELDS)
            )
