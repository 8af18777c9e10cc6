"""Where a run's checkpoints live: derived from its id, always inside RUNS_DIR."""

from __future__ import annotations

from pathlib import Path

from trainer.checkpoint_files import CHECKPOINT_NAMES


def run_dir(runs_dir: Path, run_id: int) -> Path:
    base = runs_dir.resolve()
    path = (base / f"run-{int(run_id)}").resolve()
    if base not in path.parents:
        raise ValueError(f"run directory escapes RUNS_DIR: {path}")
    return path


def checkpoint_file(directory: Path) -> Path | None:
    """The checkpoint a resume would start from, or None."""
    for name in CHECKPOINT_NAMES:
        path = directory / name
        if path.is_file():
            return path
    return None
