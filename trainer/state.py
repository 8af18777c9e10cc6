"""A run's training state: everything an epoch changes and a checkpoint holds.

One class for both ways of training: trainer.loop keeps one, trainer.packed one per member
of a pack. Set-up, resume, checkpoint and result are written here once, so a checkpoint
of a plain run resumes inside a pack and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint
from trainer.config import TrainConfig
from trainer.model import ResNet18, build_model
from trainer.precision import Runtime, describe_environment
from trainer.results import EpochMetrics, RunResult
from trainer.step import make_sgd


@dataclass(eq=False)
class RunState:
    config: TrainConfig
    model: ResNet18
    optimizer: torch.optim.SGD
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    confusion: torch.Tensor
    checkpoint_dir: Path | None = None  # None: no checkpoints
    history: list[EpochMetrics] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_before: float = 0.0  # training seconds of the attempts before this one
    epoch: int = 0  # epochs finished
    resumed_from: int = 0
    saved_epoch: int = 0  # the epoch of the newest checkpoint written or resumed from
    lr: float = 0.0  # of the last finished epoch (a pack member: of the epoch under way)
    # The global RNG as it stood after set-up: nothing draws from it later, and a member of
    # a pack must save what its run's own process would hold, not the pack's.
    global_rng: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        config: TrainConfig,
        runtime: Runtime,
        num_classes: int,
        checkpoint_dir: str | Path | None = None,
    ) -> RunState:
        """Weights at step 0 and the seeded generators; resumed from the newest good
        checkpoint in checkpoint_dir when there is one (a different config raises
        checkpoint.CheckpointMismatch)."""
        torch.manual_seed(config.seed)  # weight init
        model = build_model(config, num_classes)
        model = model.to(runtime.device, memory_format=runtime.memory_format)
        state = cls(
            config=config,
            model=model,
            optimizer=make_sgd(model.parameters(), config, runtime),
            shuffle_gen=torch.Generator().manual_seed(config.seed),
            augment_gen=torch.Generator(device=runtime.device).manual_seed(config.seed + 1),
            confusion=torch.zeros(num_classes, num_classes, dtype=torch.int64),
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
        )
        if state.checkpoint_dir is not None:
            state._restore()
        state.global_rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state.global_rng["cuda"] = torch.cuda.get_rng_state()
        return state

    def _restore(self) -> None:
        saved = checkpoint.load(self.checkpoint_dir, self.warnings)
        if saved is None:
            return
        checkpoint.check_config(saved, self.config)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        checkpoint.restore_rng(saved["rng"], self.augment_gen, self.shuffle_gen)
        self.history = [EpochMetrics(**row) for row in saved["history"]]
        self.confusion = saved["confusion"].clone()
        self.elapsed_before = float(saved["elapsed_seconds"])
        self.epoch = self.resumed_from = self.saved_epoch = int(saved["epoch"])
        self.lr = float(saved.get("schedule", {}).get("lr", 0.0))

    @property
    def unsaved(self) -> bool:
        """True when it has a checkpoint directory and finished epochs not written there."""
        return self.checkpoint_dir is not None and self.saved_epoch != self.epoch

    def save(self, elapsed: float, fence=None) -> Path | None:
        """Checkpoint the last finished epoch (elapsed: this attempt's seconds so far);
        the file written, or None when fence() refused it (see checkpoint.save)."""
        rng = checkpoint.capture_rng(self.augment_gen, self.shuffle_gen)
        rng.update(self.global_rng)
        path = checkpoint.save(
            self.checkpoint_dir,
            {
                "format": checkpoint.FORMAT,
                "config": self.config.model_dump(),
                "epoch": self.epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": {"lr": self.lr, "lr_phases": list(self.config.lr_phases)},
                "rng": rng,
                "history": [m.model_dump() for m in self.history],
                "confusion": self.confusion,
                "elapsed_seconds": self.elapsed_before + elapsed,
            },
            fence,
        )
        if path is not None:
            self.saved_epoch = self.epoch
        return path

    def result(
        self, classes: list[str], runtime: Runtime, stopped: bool, elapsed: float
    ) -> RunResult:
        """The run's outcome so far (elapsed: this attempt's seconds)."""
        history = self.history
        best = max(history, key=lambda m: m.test_acc, default=None)  # first of equals wins
        rows = self.confusion.sum(1).clamp_min(1)
        per_class = (self.confusion.diagonal().double() / rows).tolist() if history else []
        return RunResult(
            config=self.config,
            epochs=history,
            final_test_acc=history[-1].test_acc if history else None,
            best_test_acc=best.test_acc if best else None,
            best_epoch=best.epoch if best else None,
            classes=classes,
            per_class_acc=per_class,
            confusion_matrix=self.confusion.tolist() if history else [],
            total_seconds=self.elapsed_before + elapsed,
            environment=describe_environment(runtime),
            stopped_early=stopped,
            resumed_from_epoch=self.resumed_from,
            warnings=self.warnings,
        )
