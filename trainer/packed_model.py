"""K ResNet18s as one network: each layer holds the K members' channels side by side.

Member k owns channel block k of every layer: convolutions are grouped (groups=K), so block
k of the output sees only block k of the input; BatchNorm normalises each of the K*C
channels over its own member's batch, exactly as the member's own BatchNorm would; each
activation site applies member k's activation to block k; the head is one linear layer per
member (an einsum). The input is the members' batches side by side on the channel axis
(B x 3K x H x W) and the output is B x K x classes.

Module and parameter names are those of trainer.model.ResNet18, so a member's state_dict is
block k of every packed tensor (`member_state_dict`) and packing is the reverse
(`load_members`). Torch only: importable without pydantic, like trainer.model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from trainer.model import apply_activation, make_activation

# A member's activation: (name, leaky_relu slope), as in TrainConfig.
ActivationSpec = tuple[str, float]


def same_function(spec: ActivationSpec) -> tuple[str, float | None]:
    """What makes two activations the same function: the slope counts for leaky_relu only."""
    name, slope = spec
    return name, slope if name == "leaky_relu" else None


def grouped_order(specs: Sequence[ActivationSpec]) -> list[int]:
    """The members' indices with equal activations side by side (first come first, stable
    within each): in that order a mixed pack slices each activation site once per distinct
    activation, not once per change between neighbours."""
    first: dict[tuple, int] = {}
    for k, spec in enumerate(specs):
        first.setdefault(same_function(spec), k)
    return sorted(range(len(specs)), key=lambda k: (first[same_function(specs[k])], k))


class PackedActivation(nn.Module):
    """Member k's activation on channel block k; one call per run of equal neighbours."""

    def __init__(self, specs: Sequence[ActivationSpec], channels: int) -> None:
        super().__init__()
        self.channels = channels
        # Runs of consecutive members with the same activation share one call.
        self.runs: list[tuple[int, int, ActivationSpec]] = []
        for k, spec in enumerate(specs):
            if self.runs and same_function(self.runs[-1][2]) == same_function(spec):
                self.runs[-1] = (self.runs[-1][0], k + 1, spec)
            else:
                self.runs.append((k, k + 1, spec))
        # All alike (the common case): the same in-place module the plain model uses.
        self.whole = make_activation(*specs[0]) if len(self.runs) == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.whole is not None:
            return self.whole(x)
        c = self.channels
        parts = [apply_activation(*spec, x[:, a * c : b * c]) for a, b, spec in self.runs]
        return torch.cat(parts, dim=1)


def _conv(k: int, c_in: int, c_out: int, size: int, stride: int) -> nn.Conv2d:
    # No bias, as in trainer.model: the BatchNorm after it has its own.
    return nn.Conv2d(
        k * c_in, k * c_out, size, stride=stride, padding=size // 2, bias=False, groups=k
    )


class PackedBlock(nn.Module):
    """trainer.model.BasicBlock for K members: same structure, same names."""

    def __init__(self, k: int, c_in: int, c_out: int, stride: int, specs) -> None:
        super().__init__()
        self.conv1 = _conv(k, c_in, c_out, 3, stride)
        self.bn1 = nn.BatchNorm2d(k * c_out)
        self.act1 = PackedActivation(specs, c_out)
        self.conv2 = _conv(k, c_out, c_out, 3, 1)
        self.bn2 = nn.BatchNorm2d(k * c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                _conv(k, c_in, c_out, 1, stride), nn.BatchNorm2d(k * c_out)
            )
        self.act_out = PackedActivation(specs, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act_out(out + self.shortcut(x))


class PackedLinear(nn.Module):
    """K linear layers: weight K x out x in, bias K x out; B x K x in -> B x K x out."""

    def __init__(self, k: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, c_out, c_in))
        self.bias = nn.Parameter(torch.empty(k, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bki,koi->bko", x, self.weight) + self.bias


class PackedResNet18(nn.Module):
    """K members of trainer.model.ResNet18 (same width and classes), trained as one."""

    def __init__(
        self, activations: Sequence[ActivationSpec], num_classes: int = 10, width: int = 64
    ) -> None:
        super().__init__()
        self.k = k = len(activations)
        self.width = width
        self.stem = nn.Sequential(
            _conv(k, 3, width, 3, 1),
            nn.BatchNorm2d(k * width),
            PackedActivation(activations, width),
        )
        stages = []
        c_in = width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(
                    PackedBlock(k, c_in, c_out, stride, activations),
                    PackedBlock(k, c_out, c_out, 1, activations),
                )
            )
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = PackedLinear(k, c_in, num_classes)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                # One batch count per member: members joining a pack may have trained apart.
                module.num_batches_tracked = torch.zeros(k, dtype=torch.long)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))  # B x K*C x 1 x 1
        return self.head(x.view(x.shape[0], self.k, -1))

    @torch.no_grad()
    def load_members(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Copy K ResNet18 state_dicts (same width and classes) into the pack, in order."""
        if len(states) != self.k:
            raise ValueError(f"{len(states)} state_dicts for a pack of {self.k}")
        for name, packed in self.state_dict().items():
            packed.copy_(join(name, [s[name] for s in states]).view(packed.shape))

    @torch.no_grad()
    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k as a ResNet18 state_dict (fresh tensors, not views of the pack)."""
        return {name: part(name, t, k, self.k).clone() for name, t in self.state_dict().items()}


def is_stacked(name: str) -> bool:
    """True where a packed tensor has a leading K axis; elsewhere members are concatenated."""
    return name.startswith("head.") or name.endswith("num_batches_tracked")


def join(name: str, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The packed form of the members' tensors called `name` (contiguous)."""
    if is_stacked(name):
        return torch.stack(list(tensors))
    return torch.cat(list(tensors))


def part(name: str, packed: torch.Tensor, k: int, members: int) -> torch.Tensor:
    """Member k's block of the packed tensor `name` (a view)."""
    block = packed.chunk(members)[k]
    return block.squeeze(0) if is_stacked(name) else block
