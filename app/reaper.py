"""Marks runs whose worker went silent as lost, from inside the web process.

After a pass that could not reach the database (or waited for its write lock), none marks a
run lost for HEARTBEAT_TIMEOUT: a worker that could not write either keeps training through
the outage, and its first heartbeat after it lands well within that.
"""

from __future__ import annotations

import logging

import anyio

from core import lifecycle
from core.config import Settings
from core.db import new_session
from core.outages import Settle, unavailable_reason

log = logging.getLogger(__name__)


def reap_once(settings: Settings, settle: Settle | None = None) -> list[int]:
    with new_session() as session:
        if settle is not None and not settle.ready(session):
            return []
        lost = lifecycle.reap(session, settings.heartbeat_timeout)
    if lost:
        log.warning("runs lost (no heartbeat for %.0fs): %s", settings.heartbeat_timeout, lost)
    return lost


async def reap_forever(settings: Settings) -> None:
    settle = Settle(settings.heartbeat_timeout, slow=max(1.0, settings.heartbeat_interval))
    while True:
        try:
            await anyio.to_thread.run_sync(reap_once, settings, settle)
        except Exception as exc:
            if unavailable_reason(exc) is not None:
                settle.failed()
            else:
                log.exception("reaper pass failed; trying again later")
        await anyio.sleep(settings.reaper_interval)
