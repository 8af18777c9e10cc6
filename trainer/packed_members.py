"""What each member of a pack carries, and a pack built from members (used by trainer.packed).

A member keeps its weights and momentum in a plain ResNet18 and a torch.optim.SGD, exactly as
trainer.loop would hold them: that is what it loads from and saves to its checkpoint, in
trainer.loop's format. A `Pack` copies the members' weights and buffers into one
PackedResNet18 and PackedSGD, trains them, and copies them back (`store`) before a checkpoint
or when its membership changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint
from trainer.config import TrainConfig
from trainer.model import ResNet18, build_model
from trainer.packed_model import PackedResNet18
from trainer.packed_step import PackedSGD
from trainer.precision import CompiledOrEager, Runtime
from trainer.results import EpochMetrics
from trainer.schedule import lr_at_epoch, set_lr
from trainer.step import make_sgd


@dataclass(eq=False)
class Member:
    index: int  # position in train_packed's configs
    config: TrainConfig
    checkpoint_dir: Path | None
    model: ResNet18
    optimizer: torch.optim.SGD
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    global_rng: dict[str, Any] = field(default_factory=dict)
    history: list[EpochMetrics] = field(default_factory=list)
    confusion: torch.Tensor | None = None
    warnings: list[str] = field(default_factory=list)
    elapsed_before: float = 0.0
    epochs_done: int = 0
    resumed_from: int = 0
    stopped: bool = False
    total_seconds: float | None = None  # set when the member leaves
    # The epoch under way (order is None between epochs).
    lr: float = 0.0
    order: torch.Tensor | None = None
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    epoch_started: float = 0.0

    @property
    def epoch(self) -> int:
        """The epoch under way, or the next one between epochs (1-based)."""
        return self.epochs_done + 1

    def begin_epoch(self, n: int, device: torch.device) -> None:
        """What trainer.loop does at the top of an epoch: lr, and a fresh shuffle."""
        config = self.config
        self.lr = lr_at_epoch(self.epoch, config.epochs, config.lr_phases, config.lr)
        self.order = torch.randperm(n, generator=self.shuffle_gen).to(device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.epoch_started = time.perf_counter()

    def save_checkpoint(self, elapsed: float, fence=None) -> Path | None:
        """The checkpoint trainer.loop writes after the epoch, from this member's state;
        returns the file written (None: fence() refused it, see checkpoint.save)."""
        config = self.config
        rng = checkpoint.capture_rng(self.augment_gen, self.shuffle_gen)
        rng.update(self.global_rng)  # what the run's own process would hold
        return checkpoint.save(
            self.checkpoint_dir,
            {
                "format": checkpoint.FORMAT,
                "config": config.model_dump(),
                "epoch": self.epochs_done,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": {"lr": self.lr, "lr_phases": list(config.lr_phases)},
                "rng": rng,
                "history": [m.model_dump() for m in self.history],
                "confusion": self.confusion,
                "elapsed_seconds": self.elapsed_before + elapsed,
            },
            fence,
        )


def start_member(
    index: int,
    config: TrainConfig,
    runtime: Runtime,
    num_classes: int,
    checkpoint_dir: str | Path | None,
) -> Member:
    """Weights, optimizer and generators as trainer.loop sets them up, resumed if it can."""
    torch.manual_seed(config.seed)  # weight init, as trainer.loop
    model = build_model(config, num_classes).to(runtime.device, memory_format=runtime.memory_format)
    optimizer = make_sgd(model.parameters(), config, runtime)
    member = Member(
        index=index,
        config=config,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
        model=model,
        optimizer=optimizer,
        shuffle_gen=torch.Generator().manual_seed(config.seed),
        augment_gen=torch.Generator(device=runtime.device).manual_seed(config.seed + 1),
        confusion=torch.zeros(num_classes, num_classes, dtype=torch.int64),
    )
    if member.checkpoint_dir is not None:
        state = checkpoint.load(member.checkpoint_dir, member.warnings)
        if state is not None:
            checkpoint.check_config(state, config)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            checkpoint.restore_rng(state["rng"], member.augment_gen, member.shuffle_gen)
            member.history = [EpochMetrics(**row) for row in state["history"]]
            member.confusion = state["confusion"].clone()
            member.elapsed_before = float(state["elapsed_seconds"])
            member.epochs_done = member.resumed_from = int(state["epoch"])
    # The global RNG as the member's own run would checkpoint it (nothing draws from it later).
    member.global_rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        member.global_rng["cuda"] = torch.cuda.get_rng_state()
    return member


class _EveryMember:
    """A warning about the pack (its compile fell back to eager) goes to every member."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members

    def append(self, message: str) -> None:
        for member in self.members:
            member.warnings.append(message)


class Pack:
    """The members' weights and momentum, packed; plus their running train sums."""

    def __init__(self, members: list[Member], runtime: Runtime, num_classes: int) -> None:
        self.members = members
        k = len(members)
        specs = [(m.config.activation, m.config.leaky_relu_slope) for m in members]
        # Built on the meta device: no init work and no draw from the global RNG, since
        # every value is copied in from the members.
        with torch.device("meta"):
            model = PackedResNet18(specs, num_classes, members[0].config.width)
        model = model.to_empty(device=runtime.device).to(memory_format=runtime.memory_format)
        model.load_members([m.model.state_dict() for m in members])
        self.model = model
        self.forward = CompiledOrEager(model, runtime, _EveryMember(members))
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
