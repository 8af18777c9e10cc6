"""The one task: train a run. Like a web view, it loads the row, calls the library,
records the outcome; the heavy lifting is `trainer.train`."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback

from celery.signals import worker_shutting_down

from core import lifecycle
from core.config import get_settings
from core.db import ACTIVE, Run, RunStatus, new_session
from core.queue import enqueue
from core.store import open_store
from trainer.config import TrainConfig
from trainer.results import EpochMetrics
from worker import faults
from worker.celery_app import TRAIN_TASK, celery_app
from worker.heartbeat import Heartbeat, Watch

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


class StopCheck:
    """The trainer's should_stop: cancel, takeover or shutdown, read from flags the heartbeat
    thread sets. After a gap long enough for another worker to have taken the run over (this
    process was stopped, or swapped out), ownership is checked in the database before the
    trainer goes on, so a woken worker never writes a checkpoint over the new owner's."""

    def __init__(self, run_id: int, owner: lifecycle.Owner, beat: Heartbeat, verify_after: float):
        self.run_id = run_id
        self.owner = owner
        self.beat = beat
        self.verify_after = verify_after
        self.last_call: float | None = None

    def __call__(self) -> bool:
        self.beat.watch.training_started()
        now = time.monotonic()
        if self.last_call is not None and now - self.last_call > self.verify_after:
            with new_session() as session:
                if not lifecycle.owns(session, self.run_id, self.owner):
                    self.beat.superseded.set()
                    self.beat.stop_requested.set()
        self.last_call = now
        return self.beat.stop_requested.is_set() or shutting_down.is_set()


def run_one(run_id: int) -> str:
    """Train one run to the end; returns what became of it (for logs and tests)."""
    settings = get_settings()
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
        owner = lifecycle.claim(session, run_id, worker_name(), settings.heartbeat_timeout)
        if owner is None:
            return "skipped"
        config = TrainConfig.model_validate(run.config)
        store = open_store(settings)
        lifecycle.set_checkpoint(session, run_id, store.location(run_id), owner)

    log.info("run %s (attempt %s): training %s", run_id, owner.attempt, config.model_dump_json())
    watch = Watch()
    beat = Heartbeat(
        run_id,
        owner,
        watch,
        interval=settings.heartbeat_interval,
        stall_timeout=settings.stall_timeout,
    )
    beat.start()
    should_stop = StopCheck(run_id, owner, beat, verify_after=settings.heartbeat_timeout / 2)
    inject = faults.injector(settings.test_fault, settings.home_dir)

    def on_batch() -> None:
        watch.batch_done()
        if inject is not None:
            inject(watch.batches)

    def on_epoch(metrics: EpochMetrics) -> None:
        with new_session() as session:
            if not lifecycle.record_epoch(session, run_id, metrics, owner):
                beat.superseded.set()
                beat.stop_requested.set()

    def on_checkpoint(path) -> None:
        store.push(run_id, path.parent)  # before the next epoch: a successor resumes from it

    try:
        from trainer.loop import train  # torch loads here, in the worker only
        from trainer.precision import describe_environment, select_runtime

        with new_session() as session:  # the run page shows what it trains on from the start
            environment = describe_environment(select_runtime(config))
            lifecycle.set_environment(session, run_id, environment, owner)
        # With a remote RUNS_DIR: this host's copy of the published checkpoints, under the
        # heartbeat so that a long download does not look like a dead worker.
        checkpoint_dir = store.pull(run_id)
        result = train(
            config,
            on_epoch=on_epoch,
            should_stop=should_stop,
            on_batch=on_batch,
            checkpoint_dir=checkpoint_dir,
            checkpoint_seconds=settings.checkpoint_seconds,
            on_checkpoint=on_checkpoint if store.remote else None,
            data_dir=settings.resolved_data_dir,
        )
    except Exception as exc:
        log.exception("run %s failed", run_id)
        message = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}"
        with new_session() as session:
            lifecycle.fail(session, run_id, message, owner)
        return "failed"
    finally:
        beat.close()

    if beat.superseded.is_set():
        log.warning("run %s was taken over by another worker; leaving it to them", run_id)
        return "superseded"
    with new_session() as session:
        # Idempotent: fills in an epoch whose write a crash interrupted in an earlier attempt.
        for metrics in result.epochs:
            if not lifecycle.record_epoch(session, run_id, metrics, owner):
                return "superseded"
        if result.stopped_early and shutting_down.is_set():
            if lifecycle.cancel_requested(session, run_id):
                lifecycle.finish(session, run_id, result, owner)
                return "cancelled"
            # Not the user's stop: the next worker resumes it from the last checkpoint.
            if lifecycle.requeue(session, run_id, (RunStatus.running,), owner.condition()):
                enqueue([run_id])
            return "requeued"
        if not lifecycle.finish(session, run_id, result, owner):
            return "superseded"
    return "cancelled" if result.stopped_early else "succeeded"
