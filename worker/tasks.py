"""The one task: train a run. Like a web view, it loads the row, calls the library,
records the outcome; the heavy lifting is `trainer.train`."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from celery.signals import worker_shutting_down

from app import lifecycle
from app.config import get_settings
from app.db import ACTIVE, Run, RunStatus, new_session
from app.paths import run_dir
from app.queue import enqueue
from trainer.config import TrainConfig
from trainer.results import EpochMetrics
from worker.celery_app import TRAIN_TASK, celery_app
from worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# Set when the worker is asked to shut down (SIGTERM, Ctrl-C): the run in progress stops
# between batches and goes back to the queue, instead of holding the shutdown for hours.
shutting_down = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs) -> None:
    shutting_down.set()


def worker_name() -> str:
    # Unique per process: a restarted worker on the same host is a different owner.
    return f"{socket.gethostname()}:{os.getpid()}"


@celery_app.task(name=TRAIN_TASK)
def train_run(run_id: int) -> str:
    return run_one(int(run_id))


def run_one(run_id: int) -> str:
    """Train one run to the end; returns what became of it (for logs and tests)."""
    settings = get_settings()
    me = worker_name()
    if shutting_down.is_set():
        enqueue([run_id])  # taken while shutting down: leave it to the next worker
        return "requeued"
    with new_session() as session:
        run = session.get(Run, run_id)
        if run is None:
            return "missing"
        if run.cancel_requested and run.status in ACTIVE:
            lifecycle.mark_cancelled(session, run_id)
            return "cancelled"
        # A redelivered task for a run another worker is still beating on exits here.
        if not lifecycle.claim(session, run_id, me, settings.heartbeat_timeout):
            return "skipped"
        config = TrainConfig.model_validate(run.config)
        checkpoint_dir = run_dir(settings.resolved_runs_dir, run_id)
        lifecycle.set_checkpoint(session, run_id, str(checkpoint_dir))

    log.info("run %s: training %s", run_id, config.model_dump_json())
    beat = Heartbeat(run_id, me, settings.heartbeat_interval)
    beat.start()

    def on_epoch(metrics: EpochMetrics) -> None:
        with new_session() as session:
            lifecycle.record_epoch(session, run_id, metrics)

    try:
        from trainer.loop import train  # torch loads here, in the worker only

        result = train(
            config,
            on_epoch=on_epoch,
            should_stop=lambda: beat.stop_requested.is_set() or shutting_down.is_set(),
            checkpoint_dir=checkpoint_dir,
            data_dir=settings.resolved_data_dir,
        )
    except Exception as exc:
        log.exception("run %s failed", run_id)
        message = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}"
        with new_session() as session:
            lifecycle.fail(session, run_id, message, str(checkpoint_dir))
        return "failed"
    finally:
        beat.close()

    with new_session() as session:
        # Idempotent: fills in an epoch whose write a crash interrupted in an earlier attempt.
        for metrics in result.epochs:
            lifecycle.record_epoch(session, run_id, metrics)
        if result.stopped_early and shutting_down.is_set():
            if lifecycle.cancel_requested(session, run_id):
                lifecycle.finish(session, run_id, result, str(checkpoint_dir))
                return "cancelled"
            # Not the user's stop: the next worker resumes it from the last checkpoint.
            if lifecycle.requeue(session, run_id, (RunStatus.running,), Run.worker == me):
                enqueue([run_id])
            return "requeued"
        if not lifecycle.finish(session, run_id, result, str(checkpoint_dir)):
            return "superseded"
    return "cancelled" if result.stopped_early else "succeeded"
