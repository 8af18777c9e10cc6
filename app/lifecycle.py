"""Run state changes, each one a compare-and-set, shared by the API and the worker.

queued -> running -> succeeded | failed | cancelled | lost. An UPDATE ... WHERE status IN (...)
decides every race (two workers, a cancel during a finish) in the database, not in code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db import ACTIVE, RETRYABLE, Metric, Run, RunStatus, Sweep, WorkerSeen, utcnow
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult


def new_run(config: TrainConfig, sweep_id: int | None = None) -> Run:
    return Run(
        sweep_id=sweep_id,
        status=RunStatus.queued,
        config=config.model_dump(mode="json"),
        dataset=config.dataset,
        activation=config.activation,
        lr_ratio=config.lr_ratio,
        augmentation=config.augmentation,
        seed=config.seed,
        epochs_total=config.epochs,
        queued_at=utcnow(),
        updated_at=utcnow(),
    )


def _cas(session: Session, run_id: int, allowed: Iterable[RunStatus], *extra, **values) -> bool:
    """Set values on the run if its status is one of `allowed`; True if it changed."""
    values.setdefault("updated_at", utcnow())
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_([s.value for s in allowed]), *extra)
        .values(**values)
    )
    changed = session.execute(stmt).rowcount == 1
    session.commit()
    return changed


def stale_before(heartbeat_timeout: float) -> datetime:
    return utcnow() - timedelta(seconds=heartbeat_timeout)


def silent(heartbeat_timeout: float):
    """SQL condition: the run's worker has not sent a heartbeat for heartbeat_timeout."""
    return or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < stale_before(heartbeat_timeout))


def claim(session: Session, run_id: int, worker: str, heartbeat_timeout: float) -> bool:
    """Take a queued run, or a running/lost one whose worker has gone silent."""
    stale = silent(heartbeat_timeout)
    now = utcnow()
    return _cas(
        session,
        run_id,
        (RunStatus.queued, RunStatus.running, RunStatus.lost),
        or_(Run.status == RunStatus.queued.value, stale),
        Run.cancel_requested.is_(False),
        status=RunStatus.running,
        worker=worker,
        attempts=Run.attempts + 1,
        started_at=func.coalesce(Run.started_at, now),
        heartbeat_at=now,
        error=None,
    )


def heartbeat(session: Session, run_id: int, worker: str) -> bool:
    """Refresh the heartbeat; False when the run is no longer this worker's to run."""
    return _cas(
        session,
        run_id,
        (RunStatus.running,),
        Run.worker == worker,
        heartbeat_at=utcnow(),
        updated_at=Run.updated_at,
    )


def cancel_requested(session: Session, run_id: int) -> bool:
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))


def record_epoch(session: Session, run_id: int, metrics: EpochMetrics) -> None:
    """Upsert one epoch: a redelivered task rewrites, never duplicates, an epoch."""
    row = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.model_dump().items()
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(Metric).values(run_id=run_id, **row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "epoch"], set_={k: stmt.excluded[k] for k in row}
    )
    session.execute(stmt)
    best = session.execute(
        select(Metric.test_acc, Metric.epoch)
        .where(Metric.run_id == run_id, Metric.test_acc.is_not(None))
        .order_by(Metric.test_acc.desc(), Metric.epoch)
        .limit(1)
    ).first()
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            epochs_done=select(func.count()).where(Metric.run_id == run_id).scalar_subquery(),
            train_seconds=select(func.sum(Metric.seconds))
            .where(Metric.run_id == run_id)
            .scalar_subquery(),
            best_test_acc=best.test_acc if best else None,
            best_epoch=best.epoch if best else None,
            heartbeat_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    session.commit()


def finish(session: Session, run_id: int, result: RunResult, checkpoint_path: str | None) -> bool:
    """running -> succeeded (or cancelled when the trainer stopped early)."""
    status = RunStatus.cancelled if result.stopped_early else RunStatus.succeeded
    return _cas(
        session,
        run_id,
        (RunStatus.running,),
        status=status,
        finished_at=utcnow(),
        final_test_acc=None if result.stopped_early else result.final_test_acc,
        best_test_acc=result.best_test_acc,
        best_epoch=result.best_epoch,
        result={
            "classes": result.classes,
            "per_class_acc": result.per_class_acc,
            "confusion_matrix": result.confusion_matrix,
            "total_seconds": result.total_seconds,
            "stopped_early": result.stopped_early,
            "resumed_from_epoch": result.resumed_from_epoch,
            "warnings": result.warnings,
        },
        environment=result.environment,
        checkpoint_path=checkpoint_path,
    )


def fail(session: Session, run_id: int, error: str, checkpoint_path: str | None = None) -> bool:
    return _cas(
        session,
        run_id,
        (RunStatus.running, RunStatus.queued),
        status=RunStatus.failed,
        finished_at=utcnow(),
        error=error[:10_000],
        checkpoint_path=checkpoint_path,
    )


def set_checkpoint(session: Session, run_id: int, path: str) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(checkpoint_path=path))
    session.commit()


def cancel(session: Session, run_id: int) -> bool:
    """queued -> cancelled at once; running -> asks the worker to stop between batches."""
    if _cas(session, run_id, (RunStatus.queued,), status=RunStatus.cancelled, finished_at=utcnow()):
        return True
    return _cas(session, run_id, (RunStatus.running,), cancel_requested=True)


def mark_cancelled(session: Session, run_id: int) -> bool:
    """A worker found a cancel asked for before it started the run."""
    return _cas(
        session, run_id, ACTIVE, status=RunStatus.cancelled, finished_at=utcnow(), worker=None
    )


def requeue(
    session: Session, run_id: int, allowed: Iterable[RunStatus] = RETRYABLE, *extra
) -> bool:
    """Back to queued; the worker resumes from the checkpoint, if there is one."""
    return _cas(
        session,
        run_id,
        allowed,
        *extra,
        status=RunStatus.queued,
        cancel_requested=False,
        finished_at=None,
        error=None,
        final_test_acc=None,
        queued_at=utcnow(),
    )


def reap(session: Session, heartbeat_timeout: float) -> list[int]:
    """Mark running runs whose heartbeat is stale as lost; returns their ids."""
    stale = and_(
        Run.status == RunStatus.running.value,
        silent(heartbeat_timeout),
    )
    ids = list(session.scalars(select(Run.id).where(stale)))
    lost = [
        run_id
        for run_id in ids
        if _cas(
            session,
            run_id,
            (RunStatus.running,),
            stale,
            status=RunStatus.lost,
            error="worker stopped sending heartbeats",
        )
    ]
    return lost


def orphans(session: Session, heartbeat_timeout: float, max_attempts: int) -> list[int]:
    """Lost runs, and running ones gone silent, that a live worker may resume."""
    stale = silent(heartbeat_timeout)
    return list(
        session.scalars(
            select(Run.id)
            .where(
                or_(
                    Run.status == RunStatus.lost.value,
                    and_(Run.status == RunStatus.running.value, stale),
                ),
                Run.attempts < max_attempts,
                Run.cancel_requested.is_(False),
            )
            .order_by(Run.id)
        )
    )


def delete_run(session: Session, run_id: int) -> bool:
    """Deletes a run that is not queued or running; False if it is."""
    result = session.execute(
        delete(Run).where(Run.id == run_id, Run.status.notin_([s.value for s in ACTIVE]))
    )
    session.commit()
    return result.rowcount == 1


def create_sweep(
    session: Session,
    *,
    name: str,
    preset: str | None,
    base: dict,
    grid: dict,
    seeds: list[int],
    configs: list[TrainConfig],
) -> tuple[Sweep, list[Run]]:
    sweep = Sweep(name=name, preset=preset, base=base, grid=grid, seeds=seeds)
    session.add(sweep)
    session.flush()
    runs = [new_run(config, sweep.id) for config in configs]
    session.add_all(runs)
    session.commit()
    return sweep, runs


def worker_seen(session: Session, name: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(WorkerSeen).values(name=name, last_seen=utcnow())
    session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"last_seen": utcnow()})
    )
    session.commit()


def worker_gone(session: Session, name: str) -> None:
    session.execute(delete(WorkerSeen).where(WorkerSeen.name == name))
    session.commit()


def live_workers(session: Session, within: float) -> list[str]:
    return list(
        session.scalars(
            select(WorkerSeen.name)
            .where(WorkerSeen.last_seen >= stale_before(within))
            .order_by(WorkerSeen.name)
        )
    )
