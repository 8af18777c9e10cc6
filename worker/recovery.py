"""Resumes runs whose worker died: a crashed worker loses no finished epoch.

Every live worker looks, at start and then every REAPER_INTERVAL, for runs that are lost
or whose heartbeat has gone stale, puts them back in the queue (compare-and-set, so one
worker wins) and sends their task; whoever takes it resumes from the last checkpoint. On
the same pass it rings again for queued runs whose message the broker lost (core.doorbell). On
the same beat it reports itself in the workers table (worker.telemetry) and deletes
workers not seen for WORKER_RETENTION.

After a pass that could not reach the database (or waited for its write lock), none takes a
run over for HEARTBEAT_TIMEOUT: the run's own worker, which could not write either, lands
its first heartbeat well within that, and the run carries on as the same attempt.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import or_

from core import doorbell, lifecycle
from core.config import get_settings
from core.db import Run, RunStatus, new_session
from core.outages import Settle, disk_full, is_outage
from core.queue import queue_depth, ring
from worker.identity import worker_name
from worker.telemetry import Telemetry

log = logging.getLogger(__name__)


def recover_once(settle: Settle | None = None) -> list[int]:
    settings = get_settings()
    with new_session() as session:
        if settle is not None and not settle.ready(session):
            return []
        candidates = lifecycle.orphans(session, settings.heartbeat_timeout, settings.max_attempts)
        stale = or_(
            Run.status == RunStatus.lost.value, lifecycle.silent(settings.heartbeat_timeout)
        )
        requeued = [
            run_id
            for run_id in candidates
            if lifecycle.requeue(
                session, run_id, (RunStatus.lost, RunStatus.running), stale, why="lost"
            )
        ]
    if requeued:
        log.warning("resuming runs whose worker died: %s", requeued)
        ring(requeued)
    doorbell.ring_again(settings.resend_after, queue_depth, ring)
    return requeued


class RecoveryLoop(threading.Thread):
    def __init__(self, interval: float):
        super().__init__(name="recovery", daemon=True)
        self.interval = interval

    def run(self) -> None:
        settings = get_settings()
        telemetry = Telemetry()
        settle = Settle(
            settings.heartbeat_timeout, max(1.0, settings.heartbeat_interval), "taken over"
        )
        while True:
            self._attempt(settle, recover_once, settle)
            self._attempt(settle, self._report, settle, worker_name(), telemetry, settings)
            time.sleep(self.interval)  # a daemon thread: it ends with the worker process

    @staticmethod
    def _report(settle: Settle, name: str, telemetry: Telemetry, settings) -> None:
        started = settle.clock()
        telemetry.publish(name, settings.worker_retention)
        settle.waited(started)  # a wait for the lock here counts too

    @staticmethod
    def _attempt(settle: Settle, step, *args) -> None:
        try:
            step(*args)
        except Exception as exc:
            if is_outage(exc) or disk_full(exc):
                settle.failed()
            else:
                log.exception("recovery pass failed; trying again later")


def _start_on_worker_ready(**_kwargs) -> None:
    RecoveryLoop(get_settings().reaper_interval).start()


def connect_signals() -> None:
    from celery.signals import worker_ready

    worker_ready.connect(_start_on_worker_ready, weak=False)
