"""Marks runs whose worker went silent as lost, from inside the web process."""

from __future__ import annotations

import logging

import anyio

from core import lifecycle
from core.config import Settings
from core.db import new_session

log = logging.getLogger(__name__)


def reap_once(settings: Settings) -> list[int]:
    with new_session() as session:
        lost = lifecycle.reap(session, settings.heartbeat_timeout)
    if lost:
        log.warning("runs lost (no heartbeat for %.0fs): %s", settings.heartbeat_timeout, lost)
    return lost


async def reap_forever(settings: Settings) -> None:
    while True:
        try:
            await anyio.to_thread.run_sync(reap_once, settings)
        except Exception:
            log.exception("reaper pass failed; trying again later")
        await anyio.sleep(settings.reaper_interval)
