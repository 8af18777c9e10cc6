"""The workers and the queue as the Workers page, GET /api/workers and GET /metrics see
them: live workers from the workers table, what each is training from the runs table (the
source of truth), and the queue's depth with an estimate of when it drains."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.throughput import Drain, drain_estimate
from core.config import Settings
from core.db import Run, RunStatus, WorkerSeen
from core.lifecycle import stale_before


def live_within(settings: Settings) -> float:
    """Seconds since its last report within which a worker counts as live: two recovery
    periods and some slack (a report is a database write on a busy host)."""
    return 2 * settings.reaper_interval + 5


def live_workers(session: Session, settings: Settings) -> list[WorkerSeen]:
    return list(
        session.scalars(
            select(WorkerSeen)
            .where(WorkerSeen.last_seen >= stale_before(live_within(settings)))
            .order_by(WorkerSeen.name)
        )
    )


def all_workers(session: Session) -> list[WorkerSeen]:
    """Every worker still in the table (pruned after WORKER_RETENTION)."""
    return list(session.scalars(select(WorkerSeen).order_by(WorkerSeen.name)))


def running_by_worker(session: Session, names: list[str]) -> dict[str, Run]:
    """The run each of these workers holds now: running, with the worker as its owner."""
    if not names:
        return {}
    runs = session.scalars(
        select(Run).where(Run.status == RunStatus.running.value, Run.worker.in_(names))
    )
    return {run.worker: run for run in runs}


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    counts = {status.value: 0 for status in RunStatus}
    counts.update({RunStatus(status).value: n for status, n in rows})
    return counts


@dataclass(frozen=True)
class Queue:
    depth: int  # runs queued
    running: int
    drain: Drain


def queue_state(session: Session, live: int) -> Queue:
    counts = counts_by_status(session)
    return Queue(
        counts[RunStatus.queued.value],
        counts[RunStatus.running.value],
        drain_estimate(session, live),
    )


def run_summary(run: Run) -> str:
    config = run.config or {}
    parts = [
        config.get("dataset", run.dataset),
        f"width {config.get('width', 64)}",
        config.get("activation", run.activation),
        f"LR {config.get('lr_ratio', run.lr_ratio)}",
        config.get("augmentation", run.augmentation),
        f"seed {config.get('seed', run.seed)}",
    ]
    return " · ".join(str(p) for p in parts)
