"""Checkpoint writes: fenced by their publisher's ownership, named when the disk is full, and
made every epoch where they are cheap."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from trainer import checkpoint
from trainer.checkpoint import Cadence, CheckpointWriteError
from trainer.loop import train


def stop_at_call(n: int):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= n

    return should_stop


def test_a_fenced_off_write_publishes_nothing_and_leaves_no_temporary_file(tmp_path):
    checkpoint.save(tmp_path, {"epoch": 1})
    before = (tmp_path / "last.pt").read_bytes()

    assert checkpoint.save(tmp_path, {"epoch": 2}, fence=lambda: False) is None
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_stop_for_lost_ownership_at_the_epoch_boundary_writes_no_checkpoint(
    tiny_config, tmp_path
):
    # Calls 1-5 are epoch 1, 6-10 epoch 2; the stop comes before epoch 3's first batch, as a
    # woken worker's does once it learns the run was taken over.
    owner = {"still": True}

    def lose_before_epoch_3() -> bool:
        stopping = calls() >= 11
        if stopping:
            owner["still"] = False
        return stopping

    calls = counter()
    result = train(
        tiny_config(), checkpoint_dir=tmp_path, should_stop=lose_before_epoch_3,
        may_checkpoint=lambda: owner["still"],
    )  # fmt: skip
    assert result.stopped_early and [m.epoch for m in result.epochs] == [1, 2]
    assert checkpoint.peek(tmp_path)["epoch"] == 2, "written while it owned the run"
    assert not list(tmp_path.glob(".last.pt.tmp-*"))

    # The same stop while still the owner (a shutdown) does write its last epoch.
    calls = counter()
    again = tmp_path / "shutdown"
    train(tiny_config(), checkpoint_dir=again, should_stop=lambda: calls() >= 11)
    assert checkpoint.peek(again)["epoch"] == 2


def counter():
    state = {"n": 0}

    def tick() -> int:
        state["n"] += 1
        return state["n"]

    return tick


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A real 64 KiB file system: a checkpoint of the tiny model does not fit."""
    mount = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_named_leaves_no_temporary_file_and_keeps_the_reported_epoch(
    tiny_config, full_disk
):
    reported = []
    with pytest.raises(CheckpointWriteError) as failure:
        train(tiny_config(), checkpoint_dir=full_disk, on_epoch=reported.append)

    assert str(failure.value) == (f"no space left on device writing the checkpoint to {full_disk}")
    assert [m.epoch for m in reported] == [1], "the epoch was reported before the write"
    assert list(full_disk.iterdir()) == [], "no partial file left on the full disk"


def test_cheap_writes_are_made_every_epoch_and_costly_ones_wait_for_the_clock():
    now = {"t": 0.0}
    cadence = Cadence(every_seconds=60, clock=lambda: now["t"])
    assert cadence.due(epoch_seconds=1.0), "the first write is made, to measure it"

    cadence.wrote(0.01)  # 1% of a one-second epoch: a CPU epoch of a small model
    now["t"] += 1
    assert cadence.due(epoch_seconds=1.0)

    cadence.wrote(0.5)  # 50% of the epoch: a large model after a short GPU epoch
    now["t"] += 1
    assert not cadence.due(epoch_seconds=1.0)
    now["t"] += 59
    assert cadence.due(epoch_seconds=1.0), "CHECKPOINT_SECONDS after the last write"
    assert Cadence(every_seconds=0).due(1.0)
