"""The database is the ledger, the broker a doorbell.

A queue message only says "look at run N"; the run's state lives in the database. So a
message the broker lost (Redis restarted without persistence, a submission while it was
down) is repaired by ringing again: a run that is queued, unclaimed, and whose last message
is older than RESEND_AFTER is sent again whenever the broker holds fewer messages than there
are queued runs. A duplicate is harmless (claims are compare-and-set; the second message
finds the run taken and does nothing). Workers ring on every recovery pass.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from core.db import Run, RunStatus, new_session, utcnow

log = logging.getLogger(__name__)


def mark_sent(run_ids: list[int]) -> None:
    """Records that the runs' messages went out now."""
    with new_session() as session:
        session.execute(update(Run).where(Run.id.in_(run_ids)).values(sent_at=utcnow()))
        session.commit()


def ring_again(resend_after: float, queue_depth, enqueue) -> list[int]:
    """Sends the messages of queued runs the broker seems to have lost; their ids.

    `queue_depth()` is the broker's count of waiting messages (None: unknown, then nothing is
    sent); `enqueue(ids)` sends. A run is sent again only if its last message is older than
    `resend_after` seconds, and each such run is taken by one caller alone (compare-and-set
    on sent_at), so two workers do not both ring for it.
    """
    before = utcnow() - timedelta(seconds=resend_after)
    unsent = or_(Run.sent_at.is_(None), Run.sent_at < before)
    waiting = (Run.status == RunStatus.queued.value, Run.cancel_requested.is_(False))
    with new_session() as session:
        queued = session.scalar(select(func.count(Run.id)).where(*waiting))
        candidates = list(
            session.scalars(select(Run.id).where(*waiting, unsent, Run.queued_at < before))
        )
    if not candidates:
        return []
    depth = queue_depth()
    if depth is None or depth >= queued:
        return []  # every queued run has its message waiting (or the broker cannot say)
    resend = []
    with new_session() as session:
        for run_id in candidates:
            taken = session.execute(
                update(Run).where(Run.id == run_id, *waiting, unsent).values(sent_at=utcnow())
            ).rowcount
            session.commit()
            if taken:
                resend.append(run_id)
    if resend:
        log.warning(
            "runs %s are queued but the broker holds %s message(s) for %s queued run(s): "
            "sending them again", resend, depth, queued,
        )  # fmt: skip
        enqueue(resend)
    return resend
