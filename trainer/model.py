"""ResNet18 in its CIFAR form, with the activation of the config wherever ReLU stood.

CIFAR form: a 3x3 stride-1 stem and no max-pool, so a 32x32 image keeps its resolution
into the first stage; four stages of two BasicBlocks at width, 2*width, 4*width, 8*width
channels; global average pool; one linear layer. width=64 is the 11.2M-parameter model of
the study's notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # only for annotations: these modules run without pydantic
    from trainer.config import TrainConfig


# The study's activations, each as a module (in place where it can be: a plain ResNet18)
# and as an out-of-place function of (x, leaky_relu slope) (a pack's slices of one tensor).
_ACTIVATIONS: dict[str, tuple[Callable[[float], nn.Module], Callable[..., torch.Tensor]]] = {
    "relu": (lambda slope: nn.ReLU(inplace=True), lambda x, slope: F.relu(x)),
    "leaky_relu": (lambda slope: nn.LeakyReLU(slope, inplace=True), F.leaky_relu),
    "tanh": (lambda slope: nn.Tanh(), lambda x, slope: torch.tanh(x)),
    "sigmoid": (lambda slope: nn.Sigmoid(), lambda x, slope: torch.sigmoid(x)),
}


def _activation(name: str):
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}") from None


def make_activation(name: str, leaky_relu_slope: float = 0.01) -> nn.Module:
    """A fresh activation module; each site gets its own instance so it can be counted."""
    return _activation(name)[0](leaky_relu_slope)


def apply_activation(name: str, leaky_relu_slope: float, x: torch.Tensor) -> torch.Tensor:
    """The activation of x, out of place."""
    return _activation(name)[1](x, leaky_relu_slope)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the BatchNorm that follows has its own.
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-bn-act-conv-bn, plus the shortcut, then act after the add."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, activation: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = activation()
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            # Projection shortcut (option B of the paper), as in the notebook.
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.act_out = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act_out(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        width: int = 64,
        activation: str = "relu",
        leaky_relu_slope: float = 0.01,
    ) -> None:
        super().__init__()

        def act() -> nn.Module:
            return make_activation(activation, leaky_relu_slope)

        self.stem = nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width), act())
        stages = []
        c_in = width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, c_out, stride, act), BasicBlock(c_out, c_out, 1, act)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))


def build_model(config: TrainConfig, num_classes: int) -> ResNet18:
    return ResNet18(num_classes, config.width, config.activation, config.leaky_relu_slope)
