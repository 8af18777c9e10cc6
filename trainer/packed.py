"""train_packed(configs) -> [RunResult]: K runs of the study trained as one packed network.

Each member is the run trainer.train would make of its config: the same weight init, its own
shuffle and augmentation generators seeded the same way, its own images and augmentation per
batch, its own activation, lr schedule, momentum and weight decay. Their batches go side by
side through one PackedResNet18 (trainer.packed_model), so K small runs fill a device the way
one large run would.

Members must share what shapes the packed network and its data (`pack_key`). They may differ
in epochs and in where they resume from: each member checkpoints to its own directory in
trainer.loop's format, so a member can be resumed by trainer.train and a plain run inside a
pack. A member leaves the pack when it has trained its epochs or when should_stop(index)
says so (checked before every batch, as trainer.loop does); the rest are repacked and go on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer import checkpoint
from trainer.augment import to_float
from trainer.config import TrainConfig, check_packable, pack_key  # noqa: F401 (re-exported)
from trainer.loop import EVAL_BATCH_SIZE, OnBatch, _result, describe_start, load_on_device
from trainer.packed_members import Member, Pack, start_member
from trainer.packed_step import packed_batch, packed_train_step
from trainer.precision import Runtime, select_runtime
from trainer.results import EpochMetrics, RunResult

log = logging.getLogger(__name__)


def train_packed(
    configs: Sequence[TrainConfig],
    *,
    on_epoch: Callable[[int, EpochMetrics], None] | None = None,
    should_stop: Callable[[int], bool] | None = None,
    on_batch: OnBatch | None = None,
    on_leave: Callable[[int, RunResult], None] | None = None,
    on_checkpoint: Callable[[int, Path], None] | None = None,
    may_checkpoint: Callable[[int], bool] | None = None,
    checkpoint_dirs: Sequence[str | Path | None] | None = None,
    checkpoint_seconds: float = 0.0,
    data_dir: str | Path | None = None,
    progress: bool = False,
) -> list[RunResult]:
    """Train and test the configs as one pack; one RunResult per config, in order.

    on_epoch(i, metrics) and should_stop(i) are trainer.train's callbacks for member i
    (should_stop is also asked before member i's checkpoint write); on_batch(epoch, batch,
    batches) after every packed batch (the epoch of the pack's first member); on_leave(i,
    result) as soon as member i leaves the pack (done or stopped),
    with the RunResult the returned list will hold; on_checkpoint(i, path) right after member
    i's checkpoint is written (as trainer.train's on_checkpoint); may_checkpoint(i) right
    before it is published (as trainer.train's, for member i). checkpoint_dirs[i] (None: no
    checkpoints) is member i's checkpoint directory, resumed from if it holds a checkpoint;
    checkpoint_seconds throttles writes as in trainer.train (a member's last epoch and a
    stop between epochs are always written). EpochMetrics.seconds is the pack's wall time for the
    epoch and images_per_second the member's own images over it (the pack's is the sum).
    """
    check_packable(configs)
    dirs = list(checkpoint_dirs) if checkpoint_dirs is not None else [None] * len(configs)
    if len(dirs) != len(configs):
        raise ValueError(f"{len(dirs)} checkpoint_dirs for {len(configs)} configs")
    named = [Path(d).resolve() for d in dirs if d is not None]
    if len(set(named)) != len(named):
        raise ValueError("two members of a pack cannot share a checkpoint directory")

    started = time.perf_counter()
    first = configs[0]
    runtime = select_runtime(first)
    data, train_x, train_y, test_x, test_y, normalize = load_on_device(first, data_dir, runtime)

    num_classes, n, batch = len(data.classes), len(train_y), first.batch_size
    members = [
        start_member(i, config, runtime, num_classes, d)
        for i, (config, d) in enumerate(zip(configs, dirs))
    ]
    for m in members:
        log.info("pack member %s: %s", m.index, describe_start(m.resumed_from, m.config.epochs))

    def result(m: Member) -> RunResult:
        return _result(
            m.config, m.history, data.classes, m.confusion, runtime, m.warnings, m.stopped,
            m.resumed_from, m.total_seconds,
        )  # fmt: skip

    def leave(leaving: list[Member]) -> None:
        for member in leaving:
            member.total_seconds = member.elapsed_before + time.perf_counter() - started
            if on_leave is not None:
                on_leave(member.index, result(member))

    saved_at = {m.index: m.epochs_done for m in members}

    def write(m: Member) -> None:
        fence = None if may_checkpoint is None else (lambda: may_checkpoint(m.index))
        path = m.save_checkpoint(time.perf_counter() - started, fence)
        if path is None:
            return  # fenced off: this process no longer owns the member's run
        saved_at[m.index] = m.epochs_done
        if on_checkpoint is not None:
            on_checkpoint(m.index, path)

    cadence = checkpoint.Cadence(checkpoint_seconds)

    def save(candidates: list[Member], epoch_seconds: float = 0.0, force: bool = False) -> None:
        """Checkpoint members with unsaved epochs, when due (or forced), unless told to stop."""
        if not force and not cadence.due(epoch_seconds):
            return
        due = [
            m for m in candidates
            if m.checkpoint_dir is not None and saved_at[m.index] != m.epochs_done
            and not (should_stop is not None and should_stop(m.index))
        ]  # fmt: skip
        if due:
            writing = time.perf_counter()
            if pack is not None:
                pack.store()
            for m in due:
                write(m)
            cadence.wrote((time.perf_counter() - writing) / len(due))

    active = [m for m in members if m.epochs_done < m.config.epochs]
    leave([m for m in members if m not in active])
    pack: Pack | None = None
    pos = 0  # start of the next batch in the epoch under way: the same for every member
    epochs_bar = tqdm(
        total=sum(c.epochs for c in configs), initial=sum(m.epochs_done for m in members),
        desc="epochs", unit="ep", disable=not progress, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    batches = None
    try:
        while active:
            leaving = [m for m in active if should_stop is not None and should_stop(m.index)]
            if leaving:
                for member in leaving:
                    member.stopped = True
                if pack is not None:
                    pack.store()
                    pack = None
                if pos == 0:  # between epochs: the members' weights are their last epoch's
                    for m in leaving:
                        if m.checkpoint_dir is not None and saved_at[m.index] != m.epochs_done:
                            write(m)
                leave(leaving)
                active = [m for m in active if not m.stopped]
                if not active:
                    break
            if pos == 0:
                # After the stop checks: a member that leaves at the boundary keeps the lr
                # and shuffle state of its last finished epoch in its checkpoint.
                for member in active:
                    if member.order is None:
                        member.begin_epoch(n, runtime.device)
                if batches is None:
                    lo, hi = min(m.epoch for m in active), max(m.epoch for m in active)
                    batches = tqdm(
                        total=-(-n // batch), desc=f"epoch {lo}" + (f"-{hi}" if hi > lo else ""),
                        unit="batch", leave=False, disable=not progress, file=sys.stderr,
                        dynamic_ncols=True,
                    )  # fmt: skip
            if pack is None:
                pack = Pack(active, runtime, num_classes)
            elif pos == 0:
                pack.set_lr()

            # --- one batch: each member's own images and augmentation, side by side ---
            x, y = packed_batch(
                train_x, train_y, [m.order for m in pack.members], pos, batch,
                [m.config for m in pack.members], [m.augment_gen for m in pack.members],
                normalize, runtime.memory_format,
            )  # fmt: skip
            losses, logits = packed_train_step(pack.forward, pack.optimizer, runtime, x, y)
            # Sums stay on the device: no host sync per batch.
            pack.loss_sums += losses * len(y)
            pack.corrects += (logits.argmax(2) == y).sum(0)
            batches.update(1)
            if on_batch is not None:
                on_batch(pack.members[0].epoch, pos // batch + 1, batches.total)
            pos += batch
            if pos < n:
                continue

            # --- every member ends an epoch here: test, checkpoint, report ---
            pos = 0
            batches.close()
            batches = None
            _end_epoch(pack, n, test_x, test_y, num_classes, runtime, normalize)
            finished = [m for m in active if m.epochs_done == m.config.epochs]
            # Saved, then reported, as in trainer.train; a full disk loses no epoch.
            try:
                save(finished, force=True)
                save([m for m in active if m not in finished], pack.members[0].history[-1].seconds)
            except checkpoint.CheckpointWriteError:
                _report(pack.members, on_epoch, epochs_bar)
                raise
            _report(pack.members, on_epoch, epochs_bar)
            if finished:
                pack.store()
                pack = None
                leave(finished)
                active = [m for m in active if m not in finished]
    finally:
        if batches is not None:
            batches.close()
        epochs_bar.close()

    return [result(m) for m in members]


def _report(members: list[Member], on_epoch, epochs_bar) -> None:
    """Each member's finished epoch, to the caller and the progress bar."""
    for member in members:
        epochs_bar.update(1)
        epochs_bar.set_postfix(test_acc=f"{member.history[-1].test_acc:.4f}")
        if on_epoch is not None:
            on_epoch(member.index, member.history[-1])


def _end_epoch(
    pack: Pack,
    n: int,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    runtime: Runtime,
    normalize: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Each member's EpochMetrics into its history (checkpoints are the caller's)."""
    pack.flush_sums()
    members = pack.members
    loss_sums = torch.stack([m.loss_sum for m in members]).tolist()  # waits for the device
    corrects = torch.stack([m.correct for m in members]).tolist()
    train_done = time.perf_counter()
    tests = _evaluate_packed(pack, test_x, test_y, num_classes, runtime, normalize)
    for member, loss_sum, correct, (test_loss, test_acc, confusion) in zip(
        members, loss_sums, corrects, tests
    ):
        member.history.append(
            EpochMetrics(
                epoch=member.epoch,
                lr=member.lr,
                train_loss=loss_sum / n,
                train_acc=correct / n,
                test_loss=test_loss,
                test_acc=test_acc,
                seconds=time.perf_counter() - member.epoch_started,
                images_per_second=n / (train_done - member.epoch_started),
            )
        )
        member.confusion = confusion
        member.epochs_done += 1
        member.order = None


@torch.no_grad()
def _evaluate_packed(
    pack: Pack,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    runtime: Runtime,
    normalize: Callable[[torch.Tensor], torch.Tensor],
) -> list[tuple[float, float, torch.Tensor]]:
    """trainer.loop._evaluate for every member at once: (loss, accuracy, confusion) each."""
    k, c = len(pack.members), num_classes
    pack.model.eval()
    loss_sums = torch.zeros(k, dtype=torch.float64, device=runtime.device)
    pairs = torch.zeros(k * c * c, dtype=torch.int64, device=runtime.device)
    offsets = torch.arange(k, device=runtime.device) * (c * c)
    step = max(1, EVAL_BATCH_SIZE // k)  # about as many images per forward as trainer.loop
    for start in range(0, len(labels), step):
        x = normalize(to_float(images[start : start + step])).repeat(1, k, 1, 1)
        x = x.contiguous(memory_format=runtime.memory_format)
        y = labels[start : start + step]
        with runtime.autocast():
            logits = pack.forward(x)  # B x K x classes
        targets = y[:, None].expand(-1, k)
        losses = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        loss_sums += losses.sum(0)
        codes = offsets + targets * c + logits.argmax(2)
        pairs += torch.bincount(codes.flatten(), minlength=k * c * c)
    pack.model.train()
    confusion = pairs.view(k, c, c).cpu()
    count = max(len(labels), 1)
    return [
        (loss / count, confusion[j].diagonal().sum().item() / count, confusion[j].clone())
        for j, loss in enumerate(loss_sums.tolist())
    ]
