"""/healthz: is the database reachable, is the broker, which workers answer, is disk space
running out; /api/statuses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import make_url, text

from app.api.deps import SettingsDep
from app.schemas import HealthOut, StatusesOut
from app.workers import live_within
from core import worker_registry
from core.config import Settings
from core.db import ACTIVE, CHANGING, FINAL, RETRYABLE, RunStatus, get_engine, new_session
from core.queue import celery

router = APIRouter(tags=["health"])


def _database_ok() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


# Free space below either is low: a full disk stops every write of the database (and so
# training: workers stop a run whose epochs cannot be recorded) and every checkpoint.
LOW_FREE_BYTES = 1 << 30
LOW_FREE_FRACTION = 0.05


def _free(folder: Path) -> tuple[int, float, int] | None:
    """Free bytes, the free fraction and the device of the file system holding `folder` (or
    its nearest existing parent); None when it cannot be read."""
    path = next((p for p in (folder, *folder.parents) if p.exists()), None)
    try:
        usage = shutil.disk_usage(path)
        device = os.stat(path).st_dev
    except (OSError, TypeError):
        return None
    return usage.free, usage.free / usage.total if usage.total else 0.0, device


def _sqlite_folder(settings: Settings) -> Path | None:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None  # a server's disk is not this host's to see
    return Path(url.database).expanduser().resolve().parent


_NAMES = {"home": "the home folder", "database": "the database", "runs": "the runs folder"}


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _disk(settings: Settings) -> tuple[dict, list[str]]:
    """Free bytes where the home folder, a SQLite database and a local RUNS_DIR live (null
    where unknown or not local), and a warning for each that is low."""
    folders = {
        "home": settings.home_dir,
        "database": _sqlite_folder(settings),
        "runs": None if settings.runs_remote else settings.resolved_runs_dir,
    }
    disk: dict = {}
    low: dict[int, tuple[list[str], int, float]] = {}  # one warning per file system
    for name, folder in folders.items():
        free = _free(folder) if folder is not None else None
        disk[f"{name}_free_bytes"] = None if free is None else free[0]
        if free is not None and (free[0] < LOW_FREE_BYTES or free[1] < LOW_FREE_FRACTION):
            low.setdefault(free[2], ([], free[0], free[1]))[0].append(_NAMES[name])
    disk["low"] = bool(low)
    warnings = [
        f"low disk space: {free / 2**30:.1f} GiB free ({100 * fraction:.0f} %) for {_listed(names)}"
        for names, free, fraction in low.values()
    ]
    return disk, warnings


def _broker_ok() -> bool:
    try:
        with celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(settings: SettingsDep):
    """200 when the database and the broker answer; `workers` lists worker processes
    that reported in within two recovery periods; `db_connections_in_use` counts the
    database connections this web process has checked out (before this request takes one).
    `disk` gives the free bytes where the home folder, a SQLite database and a local
    RUNS_DIR live; `warnings` names each that is low (under 1 GiB or 5 %), without making
    the answer a 503."""
    in_use = get_engine().pool.checkedout()
    database = _database_ok()
    broker = _broker_ok()
    workers: list[str] = []
    if database:
        with new_session() as session:
            workers = worker_registry.live_workers(session, live_within(settings))
    disk, warnings = _disk(settings)
    body = {
        "ok": database and broker,
        "database": database,
        "broker": broker,
        "workers": workers,
        "db_connections_in_use": in_use,
        "disk": disk,
        "warnings": warnings,
    }
    return JSONResponse(body, status_code=200 if body["ok"] else 503)


@router.get("/api/statuses", response_model=StatusesOut)
def statuses() -> dict[str, list[str]]:
    """The run status vocabulary: every status, and which are active (a worker holds or will
    take the run), final (only a retry changes it), changing (not final: still followed
    live; `lost` runs are resumed by workers) and retryable."""
    names = lambda group: [s.value for s in group]  # noqa: E731
    return {
        "all": names(RunStatus),
        "active": names(ACTIVE),
        "final": names(FINAL),
        "changing": names(CHANGING),
        "retryable": names(RETRYABLE),
    }
