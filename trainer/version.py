"""Which code is running: the package's version and, in a git checkout, the commit (with
"+changes" when tracked files differ from it). Recorded with every run's environment, so a
grid's report can say which code trained it."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def code_version() -> str:
    """The version as "resnet-lab 0.1.0 (git 02c4fb0a1b2c)", "+changes" after the commit
    when tracked files differ from it, or without the commit where there is no checkout (an
    installed wheel, an image without .git)."""
    try:
        version = metadata.version("resnet-lab")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = _git_commit()
    return f"resnet-lab {version}" + (f" (git {commit})" if commit else "")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            # --no-optional-locks: never take the index lock of a checkout in use
            ["git", "--no-optional-locks", "-C", str(ROOT), *args],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git_commit() -> str | None:
    if not (ROOT / ".git").exists():
        return None
    commit = _git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+changes" if changes else "")
