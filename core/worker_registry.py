"""The workers table: one row per worker process (host:pid), upserted as it reports itself,
read by the Workers page and /healthz, pruned once a worker is long gone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db import WorkerSeen, utcnow
from core.lifecycle import stale_before


@dataclass(frozen=True)
class WorkerReport:
    """What a worker says about itself besides "alive": where it runs and on what. Any
    reading may be None (no GPU, or the reading failed)."""

    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    device_kind: str | None = None
    device_name: str | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization: float | None = None
    temperature_c: float | None = None
    cpu_threads: int | None = None
    pack: int | None = None


def worker_seen(session: Session, name: str, report: WorkerReport | None = None) -> None:
    """Upserts the worker's row: last_seen now, and the report's readings when given."""
    values = {"last_seen": utcnow()}
    if report is not None:
        values.update(asdict(report))
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(WorkerSeen).values(name=name, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
    session.commit()


def worker_took(session: Session, name: str, run_id: int) -> None:
    """Marks the run a worker took last (the Workers page reads it)."""
    session.execute(update(WorkerSeen).where(WorkerSeen.name == name).values(run_id=run_id))
    session.commit()


def prune_workers(session: Session, older_than: float) -> int:
    """Deletes workers not seen for older_than seconds: every worker process has its own
    row (host:pid), so without this the table grows with each restart."""
    result = session.execute(
        delete(WorkerSeen).where(WorkerSeen.last_seen < stale_before(older_than))
    )
    session.commit()
    return result.rowcount


def live_workers(session: Session, within: float) -> list[str]:
    return list(
        session.scalars(
            select(WorkerSeen.name)
            .where(WorkerSeen.last_seen >= stale_before(within))
            .order_by(WorkerSeen.name)
        )
    )
