"""A run's log: the lines its workers wrote, bounded per run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db import RunLog

# Log lines kept per run: enough for a run's story, bounded for a run that logs in a loop.
LOG_LINES_KEPT = 500


def add_log_lines(session: Session, run_id: int, lines: list[tuple[datetime, str, str]]) -> None:
    """Appends (at, level, message) lines to the run's log and drops the oldest past
    LOG_LINES_KEPT. Not owner-checked: a superseded worker's last words are worth keeping."""
    if not lines:
        return
    session.add_all(
        RunLog(run_id=run_id, at=at, level=level, message=message[:4000])
        for at, level, message in lines
    )
    session.flush()
    keep_from = session.scalar(
        select(RunLog.id)
        .where(RunLog.run_id == run_id)
        .order_by(RunLog.id.desc())
        .offset(LOG_LINES_KEPT - 1)
        .limit(1)
    )
    if keep_from is not None:
        session.execute(delete(RunLog).where(RunLog.run_id == run_id, RunLog.id < keep_from))
    session.commit()
