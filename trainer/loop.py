"""train(config) -> RunResult: one experiment of the study, from data to final metrics.

The whole dataset sits on the training device as uint8; each epoch shuffles indices with a
seeded generator, and each batch is gathered, augmented per image, and fed to the model
under the runtime's autocast. No DataLoader, no worker processes.

Randomness comes from three seeded sources only, all saved in every checkpoint: the global
torch RNG (weight init), the shuffle generator and the augmentation generator. That is what
makes a resumed run on CPU produce bit-identical metrics to an uninterrupted one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer import checkpoint
from trainer.augment import augment, to_float
from trainer.config import TrainConfig
from trainer.data import ImageData, load_dataset
from trainer.model import build_model
from trainer.precision import Runtime, describe_environment, select_runtime
from trainer.results import EpochMetrics, RunResult
from trainer.schedule import lr_at_epoch, set_lr
from trainer.step import train_step

EVAL_BATCH_SIZE = 1024


def train(
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_batch: Callable[[], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
) -> RunResult:
    """Train and test one config.

    on_epoch(metrics) is called after each finished epoch, once its checkpoint is on disk
    (so an epoch is reported at most once; after a crash between the two, the epoch is in
    RunResult.epochs but was not passed to on_epoch). should_stop() is checked before every
    batch and before every checkpoint write; when it returns True the run ends with
    stopped_early=True, its checkpoint left at the last finished epoch. on_batch() is called
    after every training batch (progress, for stall detection). If checkpoint_dir holds a
    checkpoint of the same config, the run continues from it (a different config raises
    checkpoint.CheckpointMismatch).
    Raises data.DatasetUnavailable when the dataset's files are missing.
    """
    started = time.perf_counter()
    runtime = select_runtime(config)
    data = load_dataset(
        config.dataset, data_dir, train_limit=config.train_limit, test_limit=config.test_limit
    )
    train_x, train_y = data.train_images.to(runtime.device), data.train_labels.to(runtime.device)
    test_x, test_y = data.test_images.to(runtime.device), data.test_labels.to(runtime.device)
    mean, std = _channel_stats(data, runtime) if config.normalize else (None, None)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        # Float 0..1 in, model input out: optional standardisation, then the memory layout.
        if mean is not None:
            x = (x - mean) / std
        return x.contiguous(memory_format=runtime.memory_format)

    torch.manual_seed(config.seed)  # weight init
    model = build_model(config, len(data.classes)).to(
        runtime.device, memory_format=runtime.memory_format
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    augment_gen = torch.Generator(device=runtime.device).manual_seed(config.seed + 1)

    history: list[EpochMetrics] = []
    warnings: list[str] = []
    confusion = torch.zeros(len(data.classes), len(data.classes), dtype=torch.int64)
    elapsed_before = 0.0
    start_epoch = 0
    if checkpoint_dir is not None:
        state = checkpoint.load(checkpoint_dir, warnings)
        if state is not None:
            checkpoint.check_config(state, config)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            checkpoint.restore_rng(state["rng"], augment_gen, shuffle_gen)
            history = [EpochMetrics(**row) for row in state["history"]]
            confusion = state["confusion"].clone()
            elapsed_before = float(state["elapsed_seconds"])
            start_epoch = int(state["epoch"])
    resumed_from = start_epoch

    # Compile the forward only; the uncompiled `model` keeps plain state_dict keys.
    forward = torch.compile(model) if runtime.compile else model

    def result(stopped: bool) -> RunResult:
        return _result(
            config, history, data.classes, confusion, runtime, warnings, stopped, resumed_from,
            elapsed_before + time.perf_counter() - started,
        )  # fmt: skip

    epochs_bar = tqdm(
        total=config.epochs, initial=start_epoch, desc="epochs", unit="ep",
        disable=not progress, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            epoch_started = time.perf_counter()
            lr = lr_at_epoch(epoch, config.epochs, config.lr_phases, config.lr)
            set_lr(optimizer, lr)

            # --- train one epoch ---
            model.train()
            order = torch.randperm(len(train_y), generator=shuffle_gen).to(runtime.device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
            correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
            batches = tqdm(
                range(0, len(order), config.batch_size), desc=f"epoch {epoch}", unit="batch",
                leave=False, disable=not progress, file=sys.stderr, dynamic_ncols=True,
            )  # fmt: skip
            for start in batches:
                if should_stop is not None and should_stop():
                    batches.close()
                    return result(stopped=True)
                idx = order[start : start + config.batch_size]
                x = prepare(augment(train_x[idx], config, augment_gen))
                y = train_y[idx]
                loss, logits = train_step(forward, optimizer, runtime, x, y)
                # Sums stay on the device: no host sync per batch.
                loss_sum += loss * len(y)
                correct += (logits.argmax(1) == y).sum()
                if on_batch is not None:
                    on_batch()
            train_loss, train_acc = loss_sum.item() / len(order), correct.item() / len(order)
            train_seconds = time.perf_counter() - epoch_started  # .item() synchronised

            # --- test ---
            test_loss, test_acc, epoch_confusion = _evaluate(
                forward, test_x, test_y, len(data.classes), runtime, prepare
            )
            metrics = EpochMetrics(
                epoch=epoch,
                lr=lr,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                seconds=time.perf_counter() - epoch_started,
                images_per_second=len(order) / train_seconds,
            )
            if should_stop is not None and should_stop():
                return result(stopped=True)  # this epoch is neither saved nor reported
            history.append(metrics)
            confusion = epoch_confusion
            if checkpoint_dir is not None:
                checkpoint.save(
                    checkpoint_dir,
                    {
                        "format": checkpoint.FORMAT,
                        "config": config.model_dump(),
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": {"lr": lr, "lr_phases": list(config.lr_phases)},
                        "rng": checkpoint.capture_rng(augment_gen, shuffle_gen),
                        "history": [m.model_dump() for m in history],
                        "confusion": confusion,
                        "elapsed_seconds": elapsed_before + time.perf_counter() - started,
                    },
                )
            epochs_bar.update(1)
            epochs_bar.set_postfix(test_acc=f"{test_acc:.4f}", lr=f"{lr:g}")
            if on_epoch is not None:
                on_epoch(metrics)
    finally:
        epochs_bar.close()
    return result(stopped=False)


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
        pairs += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes**2)
    forward.train(was_training)
    confusion = pairs.view(num_classes, num_classes).cpu()
    n = max(len(labels), 1)
    return loss_sum.item() / n, confusion.diagonal().sum().item() / n, confusion


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
