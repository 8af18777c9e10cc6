"""Where run checkpoints live: a local folder, or an fsspec URL any host can read.

The trainer always reads and writes a local folder (trainer.checkpoint: atomic last.pt and
prev.pt). With RUNS_DIR a folder, that folder is the store and nothing is copied. With
RUNS_DIR a URL (s3://bucket/prefix), a worker trains in its host's CACHE_DIR: `pull` copies
the run's published last.pt and prev.pt there before training, and `push` publishes each new
checkpoint right after it is written, so a worker on another host resumes from it.

Publishing keeps the local guarantees. A reader sees either the old or the new last.pt,
never a partial one: the new file is uploaded under a temporary key and only then copied
onto last.pt (a PUT or server-side copy replaces an S3 object atomically), so a failed
upload leaves the published pair untouched. Temporary key then copy, rather than unique
names behind a pointer file, keeps the bucket laid out like a local RUNS_DIR (run-N/last.pt,
run-N/prev.pt) and readers down to one GET. prev.pt is rotated before last.pt is replaced:
a crash in between leaves both holding the old last.pt, still a good checkpoint.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.config import Settings
from core.paths import CHECKPOINT_NAMES, checkpoint_file, run_dir

LAST, PREV = CHECKPOINT_NAMES
_TMP_PREFIX = f".{LAST}.tmp-"
CHUNK = 1 << 20


# (file name, size in bytes, its bytes in chunks): a checkpoint as a download serves it.
Opened = tuple[str, int, Iterator[bytes]]


class Store(ABC):
    """Where a run's checkpoints are kept; the trainer reads and writes the local folder
    pull() gives, and push() publishes what it wrote there."""

    # Whether has_checkpoint() costs no more than a stat (a list of runs may ask per run).
    cheap_lookup: bool

    @abstractmethod
    def location(self, run_id: int) -> str:
        """What the run's checkpoint_path column shows."""

    @abstractmethod
    def pull(self, run_id: int) -> Path:
        """This host's folder for the run, holding exactly the published checkpoints."""

    @abstractmethod
    def push(self, run_id: int, local_dir: Path) -> None:
        """Publishes local_dir's checkpoints (called after each checkpoint write)."""

    @abstractmethod
    def has_checkpoint(self, run_id: int) -> bool:
        """Whether a resume (or a download) would find a checkpoint."""

    @abstractmethod
    def open_checkpoint(self, run_id: int) -> Opened | None:
        """The checkpoint a resume would start from, or None."""

    @abstractmethod
    def delete(self, run_id: int) -> None:
        """Every checkpoint of the run, here and wherever it was published."""


class LocalStore(Store):
    """RUNS_DIR is a folder: the trainer writes straight into it."""

    cheap_lookup = True

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir

    def location(self, run_id: int) -> str:
        return str(run_dir(self.runs_dir, run_id))

    def pull(self, run_id: int) -> Path:
        return run_dir(self.runs_dir, run_id)

    def push(self, run_id: int, local_dir: Path) -> None:
        pass  # already in place

    def checkpoint_file(self, run_id: int) -> Path | None:
        """None also when the run's folder leads out of RUNS_DIR (never served)."""
        try:
            return checkpoint_file(run_dir(self.runs_dir, run_id))
        except ValueError:
            return None

    def has_checkpoint(self, run_id: int) -> bool:
        # Without checkpoint_file's two realpath walks per run (a list asks for hundreds):
        # a run folder that is no symlink resolves to itself.
        folder = os.path.join(self.runs_dir, f"run-{int(run_id)}")
        try:
            is_link = stat.S_ISLNK(os.lstat(folder).st_mode)
        except OSError:
            return False
        if is_link:
            return self.checkpoint_file(run_id) is not None
        return any(os.path.isfile(os.path.join(folder, name)) for name in CHECKPOINT_NAMES)

    def open_checkpoint(self, run_id: int) -> Opened | None:
        path = self.checkpoint_file(run_id)
        if path is None:
            return None
        try:
            f = open(path, "rb")
        except FileNotFoundError:  # rotated away between the lookup and the open
            return None
        return path.name, os.fstat(f.fileno()).st_size, _chunks(f)

    def delete(self, run_id: int) -> None:
        shutil.rmtree(run_dir(self.runs_dir, run_id), ignore_errors=True)


class RemoteStore(Store):
    """RUNS_DIR is a URL; this host's copies live under cache_dir/runs/run-N."""

    cheap_lookup = False  # a request per checkpoint name

    def __init__(self, url: str, cache_dir: Path, **storage_options: Any):
        import fsspec  # only hosts with a remote RUNS_DIR need it (the `s3` extra)

        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = root.rstrip("/")
        self.cache = cache_dir / "runs"
        # run id -> identity of the local file that the published last.pt holds: after the
        # trainer rotates it into prev.pt, push copies it server-side instead of uploading.
        self._published: dict[int, tuple[int, int, int]] = {}

    def key(self, run_id: int, name: str = "") -> str:
        return f"{self.root}/run-{int(run_id)}/{name}".rstrip("/")

    def location(self, run_id: int) -> str:
        return f"{self.url}/run-{int(run_id)}"

    def pull(self, run_id: int) -> Path:
        """This host's folder for the run, holding exactly the published checkpoints."""
        local = run_dir(self.cache, run_id)
        local.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries(run_id)  # left by a worker that died mid-publish
        for name in CHECKPOINT_NAMES:
            target = local / name
            part = local / f".{name}.download"
            try:
                self.fs.get_file(self.key(run_id, name), str(part))
            except FileNotFoundError:
                target.unlink(missing_ok=True)  # a stale copy from an earlier attempt here
                part.unlink(missing_ok=True)
                continue
            os.replace(part, target)
        self._published.pop(run_id, None)
        if (local / LAST).exists():
            self._published[run_id] = _identity(local / LAST)
        return local

    def push(self, run_id: int, local_dir: Path) -> None:
        """Publishes local_dir's last.pt and prev.pt (called after each checkpoint write)."""
        last, prev = local_dir / LAST, local_dir / PREV
        staged = self.key(run_id, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        self.fs.put_file(str(last), staged)  # may fail: nothing published has changed yet
        try:
            if not prev.exists():
                self._remove(self.key(run_id, PREV))
            elif self._published.get(run_id) == _identity(prev):
                self.fs.copy(self.key(run_id, LAST), self.key(run_id, PREV))
            else:  # e.g. the published last.pt was corrupt and set aside here
                self._publish_file(prev, self.key(run_id, PREV))
            self.fs.copy(staged, self.key(run_id, LAST))
        finally:
            self._remove(staged)
        self._published[run_id] = _identity(last)

    def has_checkpoint(self, run_id: int) -> bool:
        return any(self.fs.exists(self.key(run_id, name)) for name in CHECKPOINT_NAMES)

    def open_checkpoint(self, run_id: int) -> Opened | None:
        for name in CHECKPOINT_NAMES:
            key = self.key(run_id, name)
            try:
                size = self.fs.info(key)["size"]
                f = self.fs.open(key, "rb")
            except FileNotFoundError:
                continue
            return name, size, _chunks(f)
        return None

    def delete(self, run_id: int) -> None:
        try:
            self.fs.rm(self.key(run_id), recursive=True)
        except FileNotFoundError:
            pass
        shutil.rmtree(run_dir(self.cache, run_id), ignore_errors=True)
        self._published.pop(run_id, None)

    def _publish_file(self, path: Path, key: str) -> None:
        staged = f"{key}{_TMP_PREFIX}{uuid.uuid4().hex}"
        self.fs.put_file(str(path), staged)
        try:
            self.fs.copy(staged, key)
        finally:
            self._remove(staged)

    def _remove_temporaries(self, run_id: int) -> None:
        self.fs.invalidate_cache()
        for key in self.fs.glob(self.key(run_id, f"*{_TMP_PREFIX}*")):
            self._remove(key)

    def _remove(self, key: str) -> None:
        try:
            self.fs.rm_file(key)
        except FileNotFoundError:
            pass


def open_store(settings: Settings) -> Store:
    if not settings.runs_remote:
        return LocalStore(settings.resolved_runs_dir)
    url = settings.runs_dir
    options: dict[str, Any] = {}
    if url.startswith(("s3://", "s3a://")):
        # Fresh listings every time: another host may have published since.
        options["use_listings_cache"] = False
        # One instance per store: fsspec's shared instances do not survive Celery's forks.
        options["skip_instance_cache"] = True
        if settings.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
    return RemoteStore(url, settings.resolved_cache_dir, **options)


def _identity(path: Path) -> tuple[int, int, int]:
    # os.replace keeps inode and mtime: the same file after the trainer's rotation.
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _chunks(f) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk
