"""A run as the API shows it: its row, plus what the row implies now (duration, ETA, a
stall in the making, whether a checkpoint can be downloaded)."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from sqlalchemy import Select, select

from core.config import get_settings
from core.db import Run, RunStatus, utcnow
from core.lifecycle import stall_limit
from core.store import Store, open_store

# A listed run: every column but the results (a list never shows them), as a named tuple
# rather than an ORM object; building and reading 50 ORM objects was a third of a list call.
_LISTED = [column for column in Run.__table__.columns if column.name != "result"]
ListedRun = namedtuple("ListedRun", [column.name for column in _LISTED])


def listed_runs_query() -> Select:
    """SELECT of ListedRun's columns, to narrow with where() and order_by() as select(Run)."""
    return select(*_LISTED)


def listed_runs(session, query: Select) -> list[ListedRun]:
    """The rows of a listed_runs_query(): run_out() reads them as it reads a Run (with
    with_result=False)."""
    return [ListedRun._make(row) for row in session.connection().execute(query)]


def eta_seconds(run: Run) -> float | None:
    if run.status != RunStatus.running or run.epochs_done == 0:
        return None
    per_epoch = (run.train_seconds or 0.0) / run.epochs_done
    return max(run.epochs_total - run.epochs_done, 0) * per_epoch


def duration_seconds(run: Run) -> float | None:
    """Training time: the run's epoch times, plus the epoch in progress while running
    (queue time after a retry is not counted)."""
    if run.status == RunStatus.running:
        return (run.train_seconds or 0.0) + max((utcnow() - run.updated_at).total_seconds(), 0)
    return run.train_seconds or None


def stalled_seconds(run: Run) -> float | None:
    """Seconds since the run's last finished batch, once that is a quarter of the way to the
    stall limit (the worker fails the run at the limit): the pages show it as stalled."""
    if run.status != RunStatus.running or run.progress_at is None:
        return None
    idle = (utcnow() - run.progress_at).total_seconds()
    limit = stall_limit(get_settings().stall_timeout, run.batch_seconds)
    return idle if idle >= limit / 4 else None


def has_checkpoint(run: Run, store: Store | None = None, *, ask_remote: bool = False) -> bool:
    """Whether GET /api/runs/{id}/checkpoint finds a checkpoint. checkpoint_path is set when
    training starts, while the first checkpoint is written only after an epoch, at most
    every CHECKPOINT_SECONDS: so the store is asked. For a local RUNS_DIR that is a stat or
    two; for a URL a request per checkpoint name, made only with `ask_remote` (one run)."""
    store = store or open_store(get_settings())
    if store.cheap_lookup or ask_remote:
        return store.has_checkpoint(run.id)
    return bool(run.checkpoint_path) and run.epochs_done > 0


def run_out(
    run: Run, *, with_result: bool = True, store: Store | None = None, ask_remote: bool = False
) -> dict[str, Any]:
    """A run as the API shows it (a dict: list endpoints skip model validation for speed).
    `store` saves opening one per run; `ask_remote`: see has_checkpoint."""
    return {
        "id": run.id,
        "sweep_id": run.sweep_id,
        "name": run.name,
        "tags": run.tags or [],
        "note": run.note,
        "status": RunStatus(run.status).value,
        "config": run.config,
        "attempts": run.attempts,
        "cancel_requested": run.cancel_requested,
        "worker": run.worker,
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "heartbeat_at": run.heartbeat_at,
        "epochs_done": run.epochs_done,
        "epochs_total": run.epochs_total,
        "batches_done": run.batches_done or 0,
        "progress_at": run.progress_at,
        "stalled_seconds": stalled_seconds(run),
        "progress": min(run.epochs_done / run.epochs_total, 1.0) if run.epochs_total else 0.0,
        "duration_seconds": duration_seconds(run),
        "eta_seconds": eta_seconds(run),
        "final_test_acc": run.final_test_acc,
        "best_test_acc": run.best_test_acc,
        "best_epoch": run.best_epoch,
        "result": run.result if with_result else None,
        "environment": run.environment,
        "error": run.error,
        "has_checkpoint": has_checkpoint(run, store, ask_remote=ask_remote),
    }
