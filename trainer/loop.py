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
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer import checkpoint
from trainer.augment import augment, to_float
from trainer.config import TrainConfig
from trainer.data import ImageData, load_dataset
from trainer.model import build_model
from trainer.precision import CompiledOrEager, Runtime, describe_environment, select_runtime
from trainer.results import EpochMetrics, RunResult
from trainer.schedule import lr_at_epoch, set_lr
from trainer.step import make_sgd, train_step

EVAL_BATCH_SIZE = 1024

log = logging.getLogger(__name__)

# on_batch(epoch, batch, batches): after batch `batch` (1-based) of `batches` in `epoch`.
OnBatch = Callable[[int, int, int], None]


@dataclass
class _State:
    """Everything an epoch changes, and so everything a checkpoint holds."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    history: list[EpochMetrics] = field(default_factory=list)
    confusion: torch.Tensor | None = None
    elapsed_before: float = 0.0
    epoch: int = 0
    lr: float = 0.0  # of the last finished epoch


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
    data, train_x, train_y, test_x, test_y, normalize = load_on_device(config, data_dir, runtime)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        # Float 0..1 in, model input out: optional standardisation, then the memory layout.
        return normalize(x).contiguous(memory_format=runtime.memory_format)

    warnings: list[str] = []
    state = _fresh_state(config, runtime, len(data.classes))
    if checkpoint_dir is not None:
        _restore(state, checkpoint_dir, config, warnings)
    resumed_from = state.epoch
    log.info(describe_start(resumed_from, config.epochs))
    forward = CompiledOrEager(state.model, runtime, warnings)

    def result(stopped: bool) -> RunResult:
        return _result(
            config, state.history, data.classes, state.confusion, runtime, warnings, stopped,
            resumed_from, state.elapsed_before + time.perf_counter() - started,
        )  # fmt: skip

    def stop_asked() -> bool:
        return should_stop is not None and should_stop()

    epochs_bar = tqdm(
        total=config.epochs, initial=state.epoch, desc="epochs", unit="ep",
        disable=not progress, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    cadence, saved_epoch = checkpoint.Cadence(checkpoint_seconds), state.epoch

    def save() -> None:
        nonlocal saved_epoch
        if checkpoint_dir is not None and saved_epoch != state.epoch:
            writing = time.perf_counter()
            elapsed = state.elapsed_before + writing - started
            path = _save(state, checkpoint_dir, config, elapsed, may_checkpoint)
            cadence.wrote(time.perf_counter() - writing)
            if path is None:
                return  # fenced off: this process no longer owns the run
            saved_epoch = state.epoch
            if on_checkpoint is not None:
                on_checkpoint(path)

    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            epoch_started = time.perf_counter()
            lr = lr_at_epoch(epoch, config.epochs, config.lr_phases, config.lr)
            set_lr(state.optimizer, lr)

            try:
                train_loss, train_acc, train_seconds = _train_epoch(
                    state, forward, runtime, config, train_x, train_y, prepare,
                    stop_asked, on_batch, epoch, progress,
                )  # fmt: skip
            except _Stopped as stop:
                if stop.at_boundary:  # the model is exactly at the last finished epoch
                    save()
                return result(stopped=True)

            test_loss, test_acc, confusion = _evaluate(
                forward, test_x, test_y, len(data.classes), runtime, prepare
            )
            if stop_asked():
                return result(stopped=True)  # this epoch is neither saved nor reported
            metrics = EpochMetrics(
                epoch=epoch,
                lr=lr,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                seconds=time.perf_counter() - epoch_started,
                images_per_second=len(train_y) / train_seconds,
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


def _fresh_state(config: TrainConfig, runtime: Runtime, num_classes: int) -> _State:
    """The model and optimizer at step 0, and the seeded generators."""
    torch.manual_seed(config.seed)  # weight init
    model = build_model(config, num_classes).to(runtime.device, memory_format=runtime.memory_format)
    optimizer = make_sgd(model.parameters(), config, runtime)
    return _State(
        model=model,
        optimizer=optimizer,
        shuffle_gen=torch.Generator().manual_seed(config.seed),
        augment_gen=torch.Generator(device=runtime.device).manual_seed(config.seed + 1),
        confusion=torch.zeros(num_classes, num_classes, dtype=torch.int64),
    )


def _restore(state: _State, directory: str | Path, config: TrainConfig, warnings: list[str]):
    """Continue from the newest good checkpoint in `directory`, if there is one."""
    saved = checkpoint.load(directory, warnings)
    if saved is None:
        return
    checkpoint.check_config(saved, config)
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    checkpoint.restore_rng(saved["rng"], state.augment_gen, state.shuffle_gen)
    state.history = [EpochMetrics(**row) for row in saved["history"]]
    state.confusion = saved["confusion"].clone()
    state.elapsed_before = float(saved["elapsed_seconds"])
    state.epoch = int(saved["epoch"])
    state.lr = float(saved.get("schedule", {}).get("lr", 0.0))


def _train_epoch(
    state: _State,
    forward: Callable[[torch.Tensor], torch.Tensor],
    runtime: Runtime,
    config: TrainConfig,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    stop_asked: Callable[[], bool],
    on_batch: OnBatch | None,
    epoch: int,
    progress: bool,
) -> tuple[float, float, float]:
    """One pass over the shuffled training set: (loss, accuracy, seconds). Raises _Stopped
    when a stop was asked for before a batch."""
    started = time.perf_counter()
    state.model.train()
    order = None  # drawn after the first stop check: a stop at the boundary saves the
    # shuffle generator as the last finished epoch left it, so a resume draws this same order
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
    batches = tqdm(
        range(0, len(train_y), config.batch_size), desc=f"epoch {epoch}", unit="batch",
        leave=False, disable=not progress, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    total = len(batches)
    for number, start in enumerate(batches, 1):
        if stop_asked():
            batches.close()
            raise _Stopped(at_boundary=start == 0)
        if order is None:
            order = torch.randperm(len(train_y), generator=state.shuffle_gen).to(runtime.device)
        idx = order[start : start + config.batch_size]
        x = prepare(augment(train_x[idx], config, state.augment_gen))
        y = train_y[idx]
        loss, logits = train_step(forward, state.optimizer, runtime, x, y)
        # Sums stay on the device: no host sync per batch.
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        if on_batch is not None:
            on_batch(epoch, number, total)
    n = len(train_y)
    loss, accuracy = loss_sum.item() / n, correct.item() / n  # .item() synchronises
    return loss, accuracy, time.perf_counter() - started


def _save(state: _State, directory, config: TrainConfig, elapsed: float, fence) -> Path | None:
    return checkpoint.save(
        directory,
        {
            "format": checkpoint.FORMAT,
            "config": config.model_dump(),
            "epoch": state.epoch,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "schedule": {"lr": state.lr, "lr_phases": list(config.lr_phases)},
            "rng": checkpoint.capture_rng(state.augment_gen, state.shuffle_gen),
            "history": [m.model_dump() for m in state.history],
            "confusion": state.confusion,
            "elapsed_seconds": elapsed,
        },
        fence,
    )


@torch.no_grad()
def _evaluate(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    runtime: Runtime,
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and confusion matrix (rows: true class) on the test set."""
    was_training = forward.training
    forward.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    pairs = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=runtime.device)
    for start in range(0, len(labels), EVAL_BATCH_SIZE):
        x = prepare(to_float(images[start : start + EVAL_BATCH_SIZE]))
        y = labels[start : start + EVAL_BATCH_SIZE]
        with runtime.autocast():
            logits = forward(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        # scatter_add_, not bincount: bincount on CUDA reads its input's max back to the host.
        cells = y * num_classes + logits.argmax(1)
        pairs.scatter_add_(0, cells, torch.ones_like(cells))
    forward.train(was_training)
    confusion = pairs.view(num_classes, num_classes).cpu()
    n = max(len(labels), 1)
    return loss_sum.item() / n, confusion.diagonal().sum().item() / n, confusion


def load_on_device(config: TrainConfig, data_dir, runtime: Runtime):
    """(data, train_x, train_y, test_x, test_y, normalize): the (limited) dataset as uint8
    on the training device, and the optional per-channel standardisation (trainer.packed
    loads its members' shared data here too)."""
    data = load_dataset(
        config.dataset, data_dir, train_limit=config.train_limit, test_limit=config.test_limit
    )
    train_x, train_y = data.train_images.to(runtime.device), data.train_labels.to(runtime.device)
    test_x, test_y = data.test_images.to(runtime.device), data.test_labels.to(runtime.device)
    mean, std = _channel_stats(data, runtime) if config.normalize else (None, None)

    def normalize(x: torch.Tensor) -> torch.Tensor:
        return x if mean is None else (x - mean) / std

    return data, train_x, train_y, test_x, test_y, normalize


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


def _result(
    config: TrainConfig,
    history: list[EpochMetrics],
    classes: list[str],
    confusion: torch.Tensor,
    runtime: Runtime,
    warnings: list[str],
    stopped: bool,
    resumed_from: int,
    total_seconds: float,
) -> RunResult:
    best = max(history, key=lambda m: m.test_acc, default=None)  # first of equals wins
    rows = confusion.sum(1).clamp_min(1)
    per_class = (confusion.diagonal().double() / rows).tolist() if history else []
    return RunResult(
        config=config,
        epochs=history,
        final_test_acc=history[-1].test_acc if history else None,
        best_test_acc=best.test_acc if best else None,
        best_epoch=best.epoch if best else None,
        classes=classes,
        per_class_acc=per_class,
        confusion_matrix=confusion.tolist() if history else [],
        total_seconds=total_seconds,
        environment=describe_environment(runtime),
        stopped_early=stopped,
        resumed_from_epoch=resumed_from,
        warnings=warnings,
    )
