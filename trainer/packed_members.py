"""What each member of a pack carries, and a pack built from members (used by trainer.packed).

A member is a RunState (trainer.state), exactly as trainer.loop holds its run: weights and
momentum in a plain ResNet18 and a torch.optim.SGD, set up, resumed and checkpointed by the
same code. A `Pack` copies the members' weights and buffers into one
PackedResNet18 and PackedSGD, trains them, and copies them back (`store`) before a checkpoint
or when its membership changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from trainer.packed_model import ActivationSpec, PackedResNet18, grouped_order
from trainer.packed_step import PackedSGD
from trainer.precision import CompiledOrEager, Runtime
from trainer.schedule import lr_at_epoch, set_lr
from trainer.state import RunState


@dataclass(eq=False)
class Member(RunState):
    """A run of the pack: its RunState, and the sums of the epoch under way."""

    index: int = 0  # position in train_packed's configs
    stopped: bool = False
    left_after: float = 0.0  # seconds into this attempt when it left the pack
    order: torch.Tensor | None = None  # the epoch's shuffle; None between epochs
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    epoch_started: float = 0.0

    @property
    def next_epoch(self) -> int:
        """The epoch under way, or the next one between epochs (1-based)."""
        return self.epoch + 1

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def begin_epoch(self, n: int, device: torch.device) -> None:
        """What trainer.loop does at the top of an epoch: lr, and a fresh shuffle."""
        config = self.config
        self.lr = lr_at_epoch(self.next_epoch, config.epochs, config.lr_phases, config.lr)
        self.order = torch.randperm(n, generator=self.shuffle_gen).to(device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.epoch_started = time.perf_counter()


class _EveryMember:
    """A warning about the pack (its compile fell back to eager) goes to every member."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.told = False

    def append(self, message: str) -> None:
        self.told = True
        for member in self.members:
            member.warnings.append(message)


def _spec(member: Member) -> ActivationSpec:
    return member.config.activation, member.config.leaky_relu_slope


class Pack:
    """The members' weights and momentum, packed; plus their running train sums.

    Members sit in the pack with equal activations side by side (packed_model.grouped_order),
    so `members` need not be in the order given. A pack is compiled when the runtime says so
    and `eager` does not (trainer.precision.CompiledOrEager: dynamic=False, eager on failure).
    """

    def __init__(
        self, members: list[Member], runtime: Runtime, num_classes: int, eager: bool = False
    ) -> None:
        members = [members[i] for i in grouped_order([_spec(m) for m in members])]
        self.members = members
        k = len(members)
        specs = [_spec(m) for m in members]
        # Built on the meta device: no init work and no draw from the global RNG, since
        # every value is copied in from the members.
        with torch.device("meta"):
            model = PackedResNet18(specs, num_classes, members[0].config.width)
        model = model.to_empty(device=runtime.device).to(memory_format=runtime.memory_format)
        model.load_members([m.model.state_dict() for m in members])
        self.model = model
        if eager:
            runtime = replace(runtime, compile=False)
        elif runtime.compile:
            # A fresh graph cache for every pack: each membership has shapes of its own, and
            # the old pack's graphs never run again. Kept, they would reach dynamo's limit of
            # 8 graphs per function by the third pack, and every later pack would go eager
            # without a word.
            from torch import _dynamo  # only where compiling: the CPU never loads it

            _dynamo.reset()
        self._compile_warnings = _EveryMember(members)
        self.forward = CompiledOrEager(model, runtime, self._compile_warnings)
        self.optimizer = PackedSGD(
            list(model.parameters()),
            k,
            lr=[m.lr for m in members],
            momentum=[m.config.momentum for m in members],
            weight_decay=[m.config.weight_decay for m in members],
        )
        for j, member in enumerate(members):
            for i, p in enumerate(member.model.parameters()):
                buffer = member.optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    self.optimizer.load_buffer(i, j, buffer)
        self.loss_sums = torch.zeros(k, dtype=torch.float64, device=runtime.device)
        self.corrects = torch.zeros(k, dtype=torch.int64, device=runtime.device)

    @property
    def compile_failed(self) -> bool:
        """True once the pack's compile fell back to eager (its members were told)."""
        return self._compile_warnings.told

    def set_lr(self) -> None:
        self.optimizer.set_lr([m.lr for m in self.members])

    def flush_sums(self) -> None:
        """Add the pack's train loss and accuracy sums to the members' (on the device)."""
        for j, member in enumerate(self.members):
            member.loss_sum += self.loss_sums[j]
            member.correct += self.corrects[j]
        self.loss_sums.zero_()
        self.corrects.zero_()

    @torch.no_grad()
    def store(self) -> None:
        """Copy weights, momentum buffers, lr and sums back into the members."""
        self.flush_sums()
        for j, member in enumerate(self.members):
            member.model.load_state_dict(self.model.member_state_dict(j))
            buffers = self.optimizer.member_buffers(j)
            if buffers is not None:
                for p, buffer in zip(member.model.parameters(), buffers, strict=True):
                    member.optimizer.state[p]["momentum_buffer"] = buffer.view(p.shape).clone()
            set_lr(member.optimizer, member.lr)
