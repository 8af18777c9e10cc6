"""Run state changes, each one a compare-and-set, shared by the API and the worker.

queued -> running -> succeeded | failed | cancelled | lost. An UPDATE ... WHERE status IN (...)
decides every race (two workers, a cancel during a finish) in the database, not in code.

A worker's claim makes it the run's owner: its name and the attempt number the claim set.
Every later write of that worker names the owner and matches nothing once ownership has
moved (another worker took the run over after the first went silent), so a superseded
worker that wakes up can neither finish, fail, requeue nor add epochs to the live run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db import (
    ACTIVE,
    RETRYABLE,
    Metric,
    Run,
    RunAttempt,
    RunStatus,
    utcnow,
)
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult


@dataclass(frozen=True)
class Owner:
    """Who may write to a running run: the worker that claimed it, for that attempt."""

    worker: str
    attempt: int

    def condition(self):
        return and_(
            Run.status == RunStatus.running.value,
            Run.worker == self.worker,
            Run.attempts == self.attempt,
        )


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


def claim(session: Session, run_id: int, worker: str, heartbeat_timeout: float) -> Owner | None:
    """Take a queued run, or a running/lost one whose worker has gone silent; the new owner,
    or None when the run is not to be taken."""
    stale = silent(heartbeat_timeout)
    now = utcnow()
    taken = _cas(
        session,
        run_id,
        (RunStatus.queued, RunStatus.running, RunStatus.lost),
        or_(Run.status == RunStatus.queued.value, stale),
        Run.cancel_requested.is_(False),
        status=RunStatus.running,
        worker=worker,
        attempts=Run.attempts + 1,
        # Started is this attempt's start: never earlier than the queueing it answers.
        started_at=now,
        heartbeat_at=now,
        progress_at=None,
        batch_seconds=None,
        error=None,
    )
    if not taken:
        return None
    attempt = int(session.scalar(select(Run.attempts).where(Run.id == run_id)))
    # An attempt still open here went silent and was taken over.
    end_attempt(session, run_id, "lost", f"no heartbeat; taken over by {worker}")
    session.add(RunAttempt(run_id=run_id, attempt=attempt, worker=worker, started_at=now))
    session.commit()
    return Owner(worker, attempt)


def end_attempt(session: Session, run_id: int, outcome: str, detail: str | None = None) -> None:
    """Closes the run's open attempt (if any) with how it ended; commits."""
    session.execute(
        update(RunAttempt)
        .where(RunAttempt.run_id == run_id, RunAttempt.ended_at.is_(None))
        .values(ended_at=utcnow(), outcome=outcome, detail=detail and detail[:2000])
    )
    session.commit()


def attempts(session: Session, run_id: int) -> list[RunAttempt]:
    return list(
        session.scalars(
            select(RunAttempt).where(RunAttempt.run_id == run_id).order_by(RunAttempt.attempt)
        )
    )


@dataclass(frozen=True)
class Progress:
    """What a heartbeat carries: batches finished in this attempt, when the last one
    finished, and the median time of recent batches (None until there are some)."""

    batches_done: int = 0
    progress_at: datetime | None = None
    batch_seconds: float | None = None


def heartbeat(session: Session, run_id: int, owner: Owner, progress: Progress) -> bool:
    """Refresh the heartbeat and progress; False when the run is no longer this owner's."""
    return _cas(
        session,
        run_id,
        (RunStatus.running,),
        owner.condition(),
        heartbeat_at=utcnow(),
        batches_done=progress.batches_done,
        progress_at=progress.progress_at,
        batch_seconds=progress.batch_seconds,
        updated_at=Run.updated_at,  # not a change a stream needs to send
    )


def owns(session: Session, run_id: int, owner: Owner) -> bool:
    return session.scalar(select(Run.id).where(Run.id == run_id, owner.condition())) is not None


def stall_limit(stall_timeout: float, batch_seconds: float | None) -> float:
    """Seconds without a finished batch after which a running run counts as stuck."""
    return max(stall_timeout, 20 * (batch_seconds or 0.0))


def cancel_requested(session: Session, run_id: int) -> bool:
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))


def record_epoch(session: Session, run_id: int, metrics: EpochMetrics, owner: Owner) -> bool:
    """Upsert one epoch: a redelivered task rewrites, never duplicates, an epoch. False, and
    nothing written, when the run is no longer this owner's."""
    # The owner check takes the row's write lock first, so no takeover slips in before commit.
    claimed = session.execute(
        update(Run).where(Run.id == run_id, owner.condition()).values(heartbeat_at=utcnow())
    )
    if claimed.rowcount != 1:
        session.rollback()
        return False
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
            images_per_second=select(func.avg(Metric.images_per_second))
            .where(Metric.run_id == run_id)
            .scalar_subquery(),
            best_test_acc=best.test_acc if best else None,
            best_epoch=best.epoch if best else None,
            heartbeat_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    session.commit()
    return True


def finish(session: Session, run_id: int, result: RunResult, owner: Owner) -> bool:
    """running -> succeeded (or cancelled when the trainer stopped early), by its owner."""
    status = RunStatus.cancelled if result.stopped_early else RunStatus.succeeded
    done = _cas(
        session,
        run_id,
        (RunStatus.running,),
        owner.condition(),
        status=status,
        cancel_requested=False,
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
    )
    if done:
        end_attempt(session, run_id, status.value)
    return done


def fail(session: Session, run_id: int, error: str, owner: Owner) -> bool:
    """running -> failed, by its owner (the trainer raised, or the run stalled)."""
    failed = _cas(
        session,
        run_id,
        (RunStatus.running,),
        owner.condition(),
        status=RunStatus.failed,
        cancel_requested=False,
        finished_at=utcnow(),
        error=error[:10_000],
    )
    if failed:
        end_attempt(session, run_id, "failed", error.strip().splitlines()[0] if error else None)
    return failed


def set_crashes(
    session: Session, run_id: int, owner: Owner, crashes: int, where: str | None
) -> bool:
    """How many worker processes the run has killed, and where the last one died."""
    return _cas(
        session, run_id, (RunStatus.running,), owner.condition(),
        crashes=crashes, last_crash_at=where,
    )  # fmt: skip


def set_checkpoint(session: Session, run_id: int, path: str, owner: Owner) -> bool:
    return _cas(session, run_id, (RunStatus.running,), owner.condition(), checkpoint_path=path)


def set_environment(session: Session, run_id: int, environment: dict, owner: Owner) -> bool:
    """What the run trains on, recorded when training starts (the run page shows it)."""
    return _cas(session, run_id, (RunStatus.running,), owner.condition(), environment=environment)


def cancel(session: Session, run_id: int) -> bool:
    """queued -> cancelled at once; running -> asks the worker to stop between batches."""
    if _cas(session, run_id, (RunStatus.queued,), status=RunStatus.cancelled, finished_at=utcnow()):
        return True
    return _cas(session, run_id, (RunStatus.running,), cancel_requested=True)


def mark_cancelled(session: Session, run_id: int) -> bool:
    """A worker found a cancel asked for before it started the run."""
    return _cas(
        session,
        run_id,
        ACTIVE,
        status=RunStatus.cancelled,
        cancel_requested=False,
        finished_at=utcnow(),
        worker=None,
    )


def requeue(
    session: Session,
    run_id: int,
    allowed: Iterable[RunStatus] = RETRYABLE,
    *extra,
    why: str = "requeued",
    **values,
) -> bool:
    """Back to queued; the worker resumes from the checkpoint, if there is one. `why` ends
    the attempt under way, if one is (a person's retry starts from a finished one)."""
    requeued = _cas(
        session,
        run_id,
        allowed,
        *extra,
        status=RunStatus.queued,
        cancel_requested=False,
        started_at=None,
        finished_at=None,
        error=None,
        final_test_acc=None,
        queued_at=utcnow(),
        **values,
    )
    if requeued:
        end_attempt(session, run_id, why)
    return requeued


def retry(session: Session, run_id: int) -> bool:
    """A person's retry of a finished run: queued again, with a clean crash record."""
    return requeue(session, run_id, crashes=0, last_crash_at=None)


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
    for run_id in lost:
        end_attempt(session, run_id, "lost", "worker stopped sending heartbeats")
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
