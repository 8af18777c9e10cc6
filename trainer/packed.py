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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer import checkpoint
from trainer.augment import to_float
from trainer.config import TrainConfig, check_packable, pack_key  # noqa: F401 (re-exported)
from trainer.loop import EVAL_BATCH_SIZE, DeviceData, OnBatch, describe_start, load_on_device
from trainer.packed_members import Member, Pack
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
    batches) after every packed batch (the epoch of the first member still training);
    on_leave(i, result) as soon as member i leaves the pack (done or stopped), with the
    RunResult the returned list will hold; on_checkpoint(i, path) right after member
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
    runtime = select_runtime(configs[0])
    data = load_on_device(configs[0], data_dir, runtime)
    members = []
    for i, (config, directory) in enumerate(zip(configs, dirs)):
        member = Member.start(config, runtime, len(data.classes), directory)
        member.index = i
        log.info("pack member %s: %s", i, describe_start(member.resumed_from, config.epochs))
        members.append(member)
    hooks = _Hooks(on_epoch, should_stop, on_batch, on_leave, on_checkpoint, may_checkpoint)
    run = _PackedRun(members, data, runtime, hooks, started, checkpoint_seconds, progress)
    try:
        run.train()
    finally:
        run.close_bars()
    return [run.result(m) for m in members]


@dataclass
class _Hooks:
    """train_packed's callbacks, each for member i (None: not given)."""

    on_epoch: Callable[[int, EpochMetrics], None] | None
    should_stop: Callable[[int], bool] | None
    on_batch: OnBatch | None
    on_leave: Callable[[int, RunResult], None] | None
    on_checkpoint: Callable[[int, Path], None] | None
    may_checkpoint: Callable[[int], bool] | None

    def stop_asked(self, member: Member) -> bool:
        return self.should_stop is not None and self.should_stop(member.index)


class _PackedRun:
    """The members still training, the pack they train in, and where the epoch under way
    stands; train() reads as the steps of one batch."""

    def __init__(
        self,
        members: list[Member],
        data: DeviceData,
        runtime: Runtime,
        hooks: _Hooks,
        started: float,
        checkpoint_seconds: float,
        progress: bool,
    ) -> None:
        self.members, self.data, self.runtime, self.hooks = members, data, runtime, hooks
        self.started, self.progress = started, progress
        self.batch_size = members[0].config.batch_size
        self.batches_per_epoch = -(-len(data.train_y) // self.batch_size)
        self.cadence = checkpoint.Cadence(checkpoint_seconds)
        self.active = [m for m in members if not m.done]
        self.pack: Pack | None = None  # built from the active members when a batch needs it
        self.eager = False  # set once a pack's compile failed: the later packs do not try
        self.batches_done = 0  # of the epoch under way; 0 between epochs
        self.batch_bar = None
        self.epochs_bar = tqdm(
            total=sum(m.config.epochs for m in members), initial=sum(m.epoch for m in members),
            desc="epochs", unit="ep", disable=not progress, file=sys.stderr, dynamic_ncols=True,
        )  # fmt: skip

    @property
    def between_epochs(self) -> bool:
        return self.batches_done == 0

    def train(self) -> None:
        self._leave([m for m in self.members if m not in self.active])
        while self.active:
            self._drop_stopped()
            if not self.active:
                return
            if self.between_epochs:
                self._begin_epoch()
            self._train_batch()
            if self.batches_done == self.batches_per_epoch:
                self._end_epoch()

    def result(self, member: Member) -> RunResult:
        return member.result(self.data.classes, self.runtime, member.stopped, member.left_after)

    def close_bars(self) -> None:
        if self.batch_bar is not None:
            self.batch_bar.close()
        self.epochs_bar.close()

    def _drop_stopped(self) -> None:
        """Members whose stop was asked for leave, checkpointed if between epochs."""
        leaving = [m for m in self.active if self.hooks.stop_asked(m)]
        if not leaving:
            return
        for member in leaving:
            member.stopped = True
        self._unpack()
        if self.between_epochs:  # the members' weights are their last finished epoch's
            for member in leaving:
                if member.unsaved:
                    self._write(member)
        self._leave(leaving)

    def _begin_epoch(self) -> None:
        # After the stop checks: a member that leaves at the boundary keeps the lr and
        # shuffle state of its last finished epoch in its checkpoint.
        for member in self.active:
            if member.order is None:
                member.begin_epoch(len(self.data.train_y), self.runtime.device)
        if self.pack is not None:
            self.pack.set_lr()
        lo = min(m.next_epoch for m in self.active)
        hi = max(m.next_epoch for m in self.active)
        self.batch_bar = tqdm(
            total=self.batches_per_epoch, desc=f"epoch {lo}" + (f"-{hi}" if hi > lo else ""),
            unit="batch", leave=False, disable=not self.progress, file=sys.stderr,
            dynamic_ncols=True,
        )  # fmt: skip

    def _train_batch(self) -> None:
        """One batch: each member's own images and augmentation, side by side."""
        if self.pack is None:
            self.pack = Pack(self.active, self.runtime, len(self.data.classes), self.eager)
        pack, data = self.pack, self.data
        x, y = packed_batch(
            data.train_x, data.train_y, [m.order for m in pack.members],
            self.batches_done * self.batch_size, self.batch_size,
            [m.config for m in pack.members], [m.augment_gen for m in pack.members],
            data.normalize, self.runtime.memory_format,
        )  # fmt: skip
        losses, logits = packed_train_step(pack.forward, pack.optimizer, self.runtime, x, y)
        # Sums stay on the device: no host sync per batch.
        pack.loss_sums += losses * len(y)
        pack.corrects += (logits.argmax(2) == y).sum(0)
        self.batches_done += 1
        self.batch_bar.update(1)
        if self.hooks.on_batch is not None:
            self.hooks.on_batch(self.active[0].next_epoch, self.batches_done, self.batch_bar.total)

    def _end_epoch(self) -> None:
        """Every active member ends an epoch here: test, checkpoint, report."""
        self.batches_done = 0
        self.batch_bar.close()
        self.batch_bar = None
        pack = self.pack
        _end_epoch(pack, self.data, self.runtime)
        finished = [m for m in self.active if m.done]
        # Saved, then reported, as in trainer.train; a full disk loses no epoch.
        try:
            self._save(finished, force=True)
            self._save([m for m in self.active if not m.done], pack.members[0].history[-1].seconds)
        except checkpoint.CheckpointWriteError:
            self._report(pack.members)
            raise
        self._report(pack.members)
        if finished:
            self._unpack()
            self._leave(finished)

    def _save(self, candidates: list[Member], epoch_seconds: float = 0.0, force=False) -> None:
        """Checkpoint members with unsaved epochs, when due (or forced), unless told to stop."""
        if not force and not self.cadence.due(epoch_seconds):
            return
        due = [m for m in candidates if m.unsaved and not self.hooks.stop_asked(m)]
        if not due:
            return
        writing = time.perf_counter()
        if self.pack is not None:
            self.pack.store()
        for member in due:
            self._write(member)
        self.cadence.wrote((time.perf_counter() - writing) / len(due))

    def _write(self, member: Member) -> None:
        hooks = self.hooks
        fence = None
        if hooks.may_checkpoint is not None:
            fence = lambda: hooks.may_checkpoint(member.index)  # noqa: E731
        path = member.save(time.perf_counter() - self.started, fence)
        if path is not None and hooks.on_checkpoint is not None:  # None: fenced off
            hooks.on_checkpoint(member.index, path)

    def _report(self, members: list[Member]) -> None:
        """Each member's finished epoch, to the caller and the progress bar (in the order of
        train_packed's configs, not the pack's)."""
        for member in sorted(members, key=lambda m: m.index):
            self.epochs_bar.update(1)
            self.epochs_bar.set_postfix(test_acc=f"{member.history[-1].test_acc:.4f}")
            if self.hooks.on_epoch is not None:
                self.hooks.on_epoch(member.index, member.history[-1])

    def _unpack(self) -> None:
        """Weights and momentum back into the members; the next batch packs anew."""
        if self.pack is not None:
            self.pack.store()
            self.eager = self.eager or self.pack.compile_failed
            self.pack = None

    def _leave(self, leaving: list[Member]) -> None:
        for member in leaving:
            member.left_after = time.perf_counter() - self.started
            if self.hooks.on_leave is not None:
                self.hooks.on_leave(member.index, self.result(member))
        self.active = [m for m in self.active if m not in leaving]


def _end_epoch(pack: Pack, data: DeviceData, runtime: Runtime) -> None:
    """Each member's EpochMetrics into its history (checkpoints are the caller's)."""
    n = len(data.train_y)
    pack.flush_sums()
    members = pack.members
    loss_sums = torch.stack([m.loss_sum for m in members]).tolist()  # waits for the device
    corrects = torch.stack([m.correct for m in members]).tolist()
    train_done = time.perf_counter()
    tests = _evaluate_packed(pack, data, runtime)
    for member, loss_sum, correct, (test_loss, test_acc, confusion) in zip(
        members, loss_sums, corrects, tests
    ):
        member.history.append(
            EpochMetrics(
                epoch=member.next_epoch,
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
        member.epoch += 1
        member.order = None


@torch.no_grad()
def _evaluate_packed(
    pack: Pack, data: DeviceData, runtime: Runtime
) -> list[tuple[float, float, torch.Tensor]]:
    """trainer.loop's evaluation for every member at once: (loss, accuracy, confusion) each."""
    images, labels = data.test_x, data.test_y
    k, c = len(pack.members), len(data.classes)
    pack.model.eval()
    loss_sums = torch.zeros(k, dtype=torch.float64, device=runtime.device)
    pairs = torch.zeros(k * c * c, dtype=torch.int64, device=runtime.device)
    offsets = torch.arange(k, device=runtime.device) * (c * c)
    step = max(1, EVAL_BATCH_SIZE // k)  # about as many images per forward as trainer.loop
    for start in range(0, len(labels), step):
        x = data.normalize(to_float(images[start : start + step])).repeat(1, k, 1, 1)
        x = x.contiguous(memory_format=runtime.memory_format)
        y = labels[start : start + step]
        with runtime.autocast():
            logits = pack.forward(x)  # B x K x classes
        targets = y[:, None].expand(-1, k)
        losses = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        loss_sums += losses.sum(0)
        # scatter_add_, as trainer.loop: bincount on CUDA reads its input's max to the host.
        codes = (offsets + targets * c + logits.argmax(2)).flatten()
        pairs.scatter_add_(0, codes, torch.ones_like(codes))
    pack.model.train()
    confusion = pairs.view(k, c, c).cpu()  # the first wait for the device, once per evaluation
    count = max(len(labels), 1)
    return [
        (loss / count, confusion[j].diagonal().sum().item() / count, confusion[j].clone())
        for j, loss in enumerate(loss_sums.tolist())
    ]
