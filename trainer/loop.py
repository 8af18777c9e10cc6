"""train(config) -> RunResult: one experiment of the study, from data to final metrics.

The whole dataset sits on the training device as uint8; each epoch shuffles indices with a
seeded generator, and each batch is gathered, augmented per image, and fed to the model
under the runtime's autocast. No DataLoader, no worker processes.

Randomness comes from three seeded sources only, all saved in every checkpoint: the global
torch RNG (weight init), the shuffle generator and the augmentation generator. That is what
makes a resumed run on CPU produce bit-identical metrics to an uninterrupted one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer import checkpoint
from trainer.augment import augment, to_float
from trainer.config import TrainConfig
from trainer.data import ImageData, load_dataset
from trainer.precision import CompiledOrEager, Runtime, select_runtime
from trainer.results import EpochMetrics, RunResult
from trainer.schedule import lr_at_epoch, set_lr
from trainer.state import RunState
from trainer.step import train_step

EVAL_BATCH_SIZE = 1024

log = logging.getLogger(__name__)

# on_batch(epoch, batch, batches): after batch `batch` (1-based) of `batches` in `epoch`.
OnBatch = Callable[[int, int, int], None]


@dataclass
class DeviceData:
    """The (limited) dataset as uint8 on the training device, and its optional per-channel
    standardisation (trainer.packed's members share one)."""

    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor | None
    std: torch.Tensor | None
    memory_format: torch.memory_format

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mean is None else (x - self.mean) / self.std

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Float 0..1 in, model input out: the standardisation, then the memory layout."""
        return self.normalize(x).contiguous(memory_format=self.memory_format)


class _Stopped(Exception):
    """should_stop() said yes before a batch; at_boundary: before the epoch's first one."""

    def __init__(self, at_boundary: bool):
        self.at_boundary = at_boundary


def train(
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_batch: OnBatch | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_seconds: float = 0.0,
    on_checkpoint: Callable[[Path], None] | None = None,
    may_checkpoint: Callable[[], bool] | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
) -> RunResult:
    """Train and test one config.

    on_epoch(metrics) is called after each finished epoch. should_stop() is checked before
    every batch and before every checkpoint write; when it returns True the run ends with
    stopped_early=True, its checkpoint left at the last one written. on_batch(epoch, batch,
    batches) is called after every training batch (progress, for stall detection, and the
    breadcrumb a worker leaves for the story of a crash).

    If checkpoint_dir holds a checkpoint of the same config, the run continues from it (a
    different config raises checkpoint.CheckpointMismatch). A finished epoch is checkpointed
    when checkpoint.Cadence says so, then reported (on_epoch): after every epoch where
    the write costs under 5% of the epoch (CPU runs, small models), else once
    checkpoint_seconds have passed since the last one (0: after every epoch); always after
    the last epoch. may_checkpoint() is asked right before a checkpoint is published: False
    throws it away (a worker that lost the run must not overwrite its new owner's). After a
    crash, the epochs since the last checkpoint are trained again (on the CPU with identical
    results). Raises data.DatasetUnavailable when the dataset's files are missing, and
    checkpoint.CheckpointWriteError when a checkpoint cannot be written (a full disk), after
    reporting the epoch it could not save.
    """
    started = time.perf_counter()
    runtime = select_runtime(config)
    data = load_on_device(config, data_dir, runtime)
    state = RunState.start(config, runtime, len(data.classes), checkpoint_dir)
    log.info(describe_start(state.resumed_from, config.epochs))
    epochs = _Epochs(
        state, data, runtime, CompiledOrEager(state.model, runtime, state.warnings),
        stop_asked=lambda: should_stop is not None and should_stop(),
        on_batch=on_batch, progress=progress,
    )  # fmt: skip
    cadence = checkpoint.Cadence(checkpoint_seconds)

    def result(stopped: bool) -> RunResult:
        return state.result(data.classes, runtime, stopped, time.perf_counter() - started)

    def save() -> None:
        if not state.unsaved:
            return
        writing = time.perf_counter()
        path = state.save(writing - started, may_checkpoint)
        cadence.wrote(time.perf_counter() - writing)
        if path is not None and on_checkpoint is not None:  # None: fenced off, not ours
            on_checkpoint(path)

    epochs_bar = tqdm(
        total=config.epochs, initial=state.epoch, desc="epochs", unit="ep",
        disable=not progress, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            epoch_started = time.perf_counter()
            lr = lr_at_epoch(epoch, config.epochs, config.lr_phases, config.lr)
            set_lr(state.optimizer, lr)
            try:
                train_loss, train_acc, train_seconds = epochs.train(epoch)
            except _Stopped as stop:
                if stop.at_boundary:  # the model is exactly at the last finished epoch
                    save()
                return result(stopped=True)

            test_loss, test_acc, confusion = epochs.evaluate()
            if epochs.stop_asked():
                return result(stopped=True)  # this epoch is neither saved nor reported
            metrics = EpochMetrics(
                epoch=epoch,
                lr=lr,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                seconds=time.perf_counter() - epoch_started,
                images_per_second=len(data.train_y) / train_seconds,
            )
            state.history.append(metrics)
            state.confusion, state.epoch, state.lr = confusion, epoch, lr
            epochs_bar.update(1)
            epochs_bar.set_postfix(test_acc=f"{test_acc:.4f}", lr=f"{lr:g}")
            # Saved, then reported: an epoch a person sees is in the checkpoint when one was due.
            if cadence.due(metrics.seconds) or epoch == config.epochs:
                try:
                    save()
                except checkpoint.CheckpointWriteError:
                    if on_epoch is not None:
                        on_epoch(metrics)  # trained all the same: a full disk loses no epoch
                    raise
            if on_epoch is not None:
                on_epoch(metrics)
    finally:
        epochs_bar.close()
    return result(stopped=False)


def describe_start(resumed_from: int, epochs: int) -> str:
    """The line each attempt starts with: fresh, or resumed from a checkpoint."""
    if resumed_from == 0:
        return f"starting fresh: epoch 1 of {epochs}"
    return f"resumed from epoch {resumed_from} of {epochs} (its checkpoint)"


@dataclass
class _Epochs:
    """One run's epochs: its state, data and forward, and the caller's hooks."""

    state: RunState
    data: DeviceData
    runtime: Runtime
    forward: CompiledOrEager
    stop_asked: Callable[[], bool]
    on_batch: OnBatch | None
    progress: bool

    def train(self, epoch: int) -> tuple[float, float, float]:
        """One pass over the shuffled training set: (loss, accuracy, seconds). Raises
        _Stopped when a stop was asked for before a batch."""
        started = time.perf_counter()
        state, data, config, device = self.state, self.data, self.state.config, self.runtime.device
        state.model.train()
        order = None  # drawn after the first stop check: a stop at the boundary saves the
        # shuffle generator as the last finished epoch left it, so a resume draws this order
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        n = len(data.train_y)
        batches = tqdm(
            range(0, n, config.batch_size), desc=f"epoch {epoch}", unit="batch", leave=False,
            disable=not self.progress, file=sys.stderr, dynamic_ncols=True,
        )  # fmt: skip
        total = len(batches)
        for number, start in enumerate(batches, 1):
            if self.stop_asked():
                batches.close()
                raise _Stopped(at_boundary=start == 0)
            if order is None:
                order = torch.randperm(n, generator=state.shuffle_gen).to(device)
            idx = order[start : start + config.batch_size]
            x = data.prepare(augment(data.train_x[idx], config, state.augment_gen))
            y = data.train_y[idx]
            loss, logits = train_step(self.forward, state.optimizer, self.runtime, x, y)
            # Sums stay on the device: no host sync per batch.
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
            if self.on_batch is not None:
                self.on_batch(epoch, number, total)
        loss, accuracy = loss_sum.item() / n, correct.item() / n  # .item() synchronises
        return loss, accuracy, time.perf_counter() - started

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, torch.Tensor]:
        """Mean loss, accuracy and confusion matrix (rows: true class) on the test set."""
        forward, data, device = self.forward, self.data, self.runtime.device
        images, labels, num_classes = data.test_x, data.test_y, len(data.classes)
        was_training = forward.training
        forward.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        pairs = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        for start in range(0, len(labels), EVAL_BATCH_SIZE):
            x = data.prepare(to_float(images[start : start + EVAL_BATCH_SIZE]))
            y = labels[start : start + EVAL_BATCH_SIZE]
            with self.runtime.autocast():
                logits = forward(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            # scatter_add_, not bincount: bincount on CUDA reads its input's max to the host.
            cells = y * num_classes + logits.argmax(1)
            pairs.scatter_add_(0, cells, torch.ones_like(cells))
        forward.train(was_training)
        confusion = pairs.view(num_classes, num_classes).cpu()
        n = max(len(labels), 1)
        return loss_sum.item() / n, confusion.diagonal().sum().item() / n, confusion


def load_on_device(config: TrainConfig, data_dir, runtime: Runtime) -> DeviceData:
    """The (limited) dataset of config on the training device (trainer.packed loads its
    members' shared data here too)."""
    data = load_dataset(
        config.dataset, data_dir, train_limit=config.train_limit, test_limit=config.test_limit
    )
    mean, std = _channel_stats(data, runtime) if config.normalize else (None, None)
    return DeviceData(
        classes=data.classes,
        train_x=data.train_images.to(runtime.device),
        train_y=data.train_labels.to(runtime.device),
        test_x=data.test_images.to(runtime.device),
        test_y=data.test_labels.to(runtime.device),
        mean=mean,
        std=std,
        memory_format=runtime.memory_format,
    )


def _channel_stats(data: ImageData, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the (limited) training images, in 0..1 units."""
    # Integer sums over uint8 are exact; chunks keep CIFAR's 150M values out of float64 RAM.
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    for chunk in data.train_images.split(4096):
        wide = chunk.to(torch.int64)
        total += wide.sum(dim=(0, 2, 3))
        squares += (wide * wide).sum(dim=(0, 2, 3))
    count = data.train_images[:, 0].numel()
    mean = total.double() / count / 255
    std = (squares.double() / count / 255**2 - mean**2).clamp_min(1e-12).sqrt()
    return (
        mean.float().view(1, 3, 1, 1).to(runtime.device),
        std.float().view(1, 3, 1, 1).to(runtime.device),
    )
