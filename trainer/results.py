"""What a run reports: one row per epoch and the final result. No torch here either."""

from __future__ import annotations

from pydantic import BaseModel, Field

from trainer.config import TrainConfig


class EpochMetrics(BaseModel):
    """One finished epoch. Accuracies are fractions in 0..1; epochs count from 1."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    images_per_second: float


class RunResult(BaseModel):
    """The outcome of `trainer.train`. `stopped_early` is true when should_stop ended it."""

    config: TrainConfig
    epochs: list[EpochMetrics] = Field(default_factory=list)
    final_test_acc: float | None = None
    best_test_acc: float | None = None
    best_epoch: int | None = None
    classes: list[str] = Field(default_factory=list)
    per_class_acc: list[float] = Field(default_factory=list)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    total_seconds: float = 0.0
    environment: dict[str, str] = Field(default_factory=dict)
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    warnings: list[str] = Field(default_factory=list)
