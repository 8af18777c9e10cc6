"""Checkpoints that let a run continue exactly, and survive a crash while being written.

A checkpoint is a plain `torch.save` dict of tensors and primitive types only (config as a
dict, history as a list of dicts), so it loads with `torch.load(..., weights_only=True)`:

    format, config, epoch, model, optimizer, schedule, rng, history, confusion,
    elapsed_seconds

Two files per checkpoint_dir: `last.pt` (newest) and `prev.pt` (the one before). Writing is
atomic: a temporary file in the same directory, fsync, then `os.replace`. A torn or corrupted
file is detected on load by the CRC32 that the zip container of torch.save keeps for every
record (torch.load alone does not check it), set aside as `*.corrupt`, and the previous good
file is used instead.
"""

from __future__ import annotations

import errno
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint_files import LAST, PREV
from trainer.config import TrainConfig

FORMAT = 1
_REQUIRED = ("format", "config", "epoch", "model", "optimizer", "rng", "history")


class CheckpointMismatch(ValueError):
    """The checkpoint belongs to a different config than the run asked to resume it."""


class CorruptCheckpoint(Exception):
    pass


class CheckpointWriteError(OSError):
    """The checkpoint could not be written (a full disk, above all); nothing was left behind
    and the previous checkpoint is untouched."""


def save(
    directory: str | os.PathLike,
    state: dict[str, Any],
    fence: Callable[[], bool] | None = None,
) -> Path | None:
    """Write `state` as the new last.pt; the old last.pt becomes prev.pt.

    fence() is asked after the file is written and before it is published (renamed onto
    last.pt): False throws the file away and returns None. A worker passes its ownership
    check here, so that a worker woken after another took its run over writes nothing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{LAST}.tmp-{os.getpid()}"
    try:
        with _crc32_on(), open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(exc, directory) from exc
    if fence is not None and not fence():
        tmp.unlink(missing_ok=True)
        return None
    last = directory / LAST
    if last.exists():
        os.replace(last, directory / PREV)
    # A crash here leaves prev.pt (good) and no last.pt: load() then uses prev.pt.
    os.replace(tmp, last)
    _fsync_dir(directory)
    return last


def _write_error(exc: BaseException, directory: Path) -> BaseException:
    """torch.save reports a full disk in its own words ("unexpected pos ... vs ..."): say it
    in a person's, with the folder. Errors that are not about the disk pass unchanged."""
    full = getattr(exc, "errno", None) == errno.ENOSPC or _disk_full(directory)
    if full:
        error = CheckpointWriteError(
            f"no space left on device writing the checkpoint to {directory}"
        )
        error.errno = errno.ENOSPC
        return error
    if isinstance(exc, OSError):
        error = CheckpointWriteError(
            f"could not write the checkpoint to {directory}: {exc.strerror or exc}"
        )
        error.errno = exc.errno
        return error
    return exc


def _disk_full(directory: Path) -> bool:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1024 * 1024


# A checkpoint write that costs at most this share of its epoch's time is made every epoch.
CHEAP_WRITE_SHARE = 0.05


class Cadence:
    """When a finished epoch is checkpointed: when the write is cheap next to the epoch (at
    most CHEAP_WRITE_SHARE of its time, as on a CPU or for a small model, where every epoch
    is then kept), else at most every `every_seconds` (a 90 MB write after a one-second GPU
    epoch would cost more than the epoch). The first epoch is always written, to measure."""

    def __init__(self, every_seconds: float, share: float | None = None, clock=time.monotonic):
        self.every_seconds = every_seconds
        self.share = CHEAP_WRITE_SHARE if share is None else share
        self.clock = clock
        self.last = clock()
        self.write_seconds: float | None = None

    def due(self, epoch_seconds: float) -> bool:
        if self.write_seconds is None or self.clock() - self.last >= self.every_seconds:
            return True
        return self.write_seconds <= self.share * epoch_seconds

    def wrote(self, seconds: float) -> None:
        self.last = self.clock()
        self.write_seconds = seconds


def load(directory: str | os.PathLike, warnings: list[str] | None = None) -> dict | None:
    """The newest readable checkpoint in `directory`, or None if it has none.

    Unreadable files are renamed to `*.corrupt` (so a later save never rotates them into
    prev.pt) and described in `warnings`.
    """
    directory = Path(directory)
    found_corrupt = False
    for name in (LAST, PREV):
        path = directory / name
        if not path.exists():
            continue
        try:
            return read(path)
        except CorruptCheckpoint as exc:
            found_corrupt = True
            os.replace(path, path.with_name(path.name + ".corrupt"))
            if warnings is not None:
                warnings.append(f"checkpoint {path} is corrupt ({exc}); set aside as *.corrupt")
    if found_corrupt and warnings is not None:
        warnings.append("no readable checkpoint left: training from scratch")
    return None


def peek(directory: str | os.PathLike) -> dict | None:
    """The newest readable checkpoint without touching any file (for CLIs and workers)."""
    for name in (LAST, PREV):
        path = Path(directory) / name
        if path.exists():
            try:
                return read(path)
            except CorruptCheckpoint:
                continue
    return None


def read(path: Path) -> dict:
    """Load one checkpoint file; raises CorruptCheckpoint if it is torn or altered."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every record and checks its CRC32
        if bad is not None:
            raise CorruptCheckpoint(f"CRC mismatch in record {bad}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except CorruptCheckpoint:
        raise
    except Exception as exc:  # zip, unpickling and I/O errors all mean: unusable
        raise CorruptCheckpoint(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise CorruptCheckpoint("not a trainer checkpoint (keys missing)")
    if state["format"] != FORMAT:
        raise CorruptCheckpoint(f"checkpoint format {state['format']}, expected {FORMAT}")
    return state


def check_config(state: dict, config: TrainConfig) -> None:
    """Refuse to continue a checkpoint under another config: its epochs would not add up."""
    # A field added to TrainConfig after the checkpoint was written counts at its default.
    defaults = {name: field.default for name, field in TrainConfig.model_fields.items()}
    saved, wanted = {**defaults, **state["config"]}, config.model_dump()
    diffs = [
        f"{key}: checkpoint has {saved.get(key)!r}, run has {wanted.get(key)!r}"
        for key in sorted(set(saved) | set(wanted))
        if saved.get(key) != wanted.get(key)
    ]
    if diffs:
        raise CheckpointMismatch(
            "checkpoint was written by a different config; resume it with the same settings "
            "or use another checkpoint directory. Differences: " + "; ".join(diffs)
        )


def capture_rng(augment: torch.Generator, shuffle: torch.Generator) -> dict[str, Any]:
    """Every random state the loop draws from (no Python or NumPy randomness is used)."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "augment": augment.get_state(),
        "shuffle": shuffle.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()  # the current device only
    return states


def restore_rng(states: dict[str, Any], augment: torch.Generator, shuffle: torch.Generator):
    torch.set_rng_state(states["torch"])
    augment.set_state(states["augment"])
    shuffle.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


class _crc32_on:
    """torch.save writes CRC32s unless switched off globally; load() relies on them."""

    def __enter__(self) -> None:
        ser = torch.serialization
        self._before = ser.get_crc32_options() if hasattr(ser, "get_crc32_options") else None
        if self._before is False:
            ser.set_crc32_options(True)

    def __exit__(self, *exc: object) -> None:
        if self._before is False:
            torch.serialization.set_crc32_options(False)


def _fsync_dir(directory: Path) -> None:
    # Makes the renames themselves durable; not possible on every OS (e.g. Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
