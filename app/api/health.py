"""/healthz: is the database reachable, is the broker, which workers answer; /api/statuses."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import SettingsDep
from app.schemas import HealthOut, StatusesOut
from app.workers import live_within
from core import lifecycle
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
    database connections this web process has checked out (before this request takes one)."""
    in_use = get_engine().pool.checkedout()
    database = _database_ok()
    broker = _broker_ok()
    workers: list[str] = []
    if database:
        with new_session() as session:
            workers = lifecycle.live_workers(session, live_within(settings))
    body = {
        "ok": database and broker,
        "database": database,
        "broker": broker,
        "workers": workers,
        "db_connections_in_use": in_use,
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
