"""The queue: the one Celery app of a process and how run ids reach the workers. The row is
committed first; the message carries only the id.

The web app sends tasks with it; `worker.celery_app` runs it. Both build it here, so the two
sides cannot disagree on the broker, the serialisers or the queue.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from functools import lru_cache, partial

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from core.config import get_settings

# The embedded SQLite broker polls; its transport options go to create_engine, so the
# interval is set on the class. A tenth of a second keeps the queue feeling instant.
kombu_sqlalchemy.Transport.polling_interval = 0.1

log = logging.getLogger(__name__)

# The one place the web side names the worker's code (core may not import worker): the
# module Celery loads (`celery -A`), the module holding the tasks, and the task the web app
# sends. tests/worker/test_names.py checks that each resolves.
WORKER_APP = "worker.celery_app"
TASKS_MODULE = "worker.tasks"
TRAIN_TASK = f"{TASKS_MODULE}.train_run"
QUEUE = "runs"


def make_celery() -> Celery:
    settings = get_settings()
    if settings.uses_embedded_broker:
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("resnet_lab", broker=settings.resolved_broker_url, include=[TASKS_MODULE])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=QUEUE,
        # A run is acknowledged only once it is over, and a worker takes one at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # One run per worker process, trained in that process: CUDA is never forked, a
        # SIGKILL takes the run with it, and plain `celery -A worker.celery_app worker`
        # behaves like `resnet-lab worker`.
        worker_pool="solo",
        worker_concurrency=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Longer than any run: Redis must not hand a running task to a second worker.
            # Crashed workers' runs are recovered through heartbeats instead (worker.recovery).
            "visibility_timeout": 7 * 24 * 3600,
        },
        worker_hijack_root_logger=False,
    )
    if settings.uses_embedded_broker:
        # Transport options go to create_engine: every broker connection comes from here.
        broker_db = str(settings.home_dir / "broker.db")
        app.conf.broker_transport_options = {"creator": partial(_broker_connection, broker_db)}
    return app


def _broker_connection(path: str) -> sqlite3.Connection:
    """A connection to the embedded broker's SQLite file.

    WAL: the app publishing and the workers polling (BEGIN IMMEDIATE every 0.1 s) no longer
    wait on each other's locks. synchronous=NORMAL: no fsync per message; kombu commits every
    message on its own, so a 108-run grid took 108 fsyncs (about 2 s here, 0.25 s without).
    Like Redis's default append-only fsync (every second), an OS crash or power cut may lose
    the last messages; a crash of the app or a worker loses none.
    """
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@lru_cache
def _celery_for(broker_url: str) -> Celery:
    return make_celery()


def celery() -> Celery:
    """This process's Celery app for the configured broker (tests switch brokers)."""
    return _celery_for(get_settings().resolved_broker_url)


def enqueue(run_ids: Iterable[int]) -> None:
    """Rings the doorbell for each run; raises when the broker cannot be reached (the runs
    stay queued in the database and core.doorbell sends them again later)."""
    celery_app = celery()
    ids = list(run_ids)
    if not ids:
        return
    # One broker connection for the whole batch: a 108-run grid is sent in one go.
    with celery_app.producer_or_acquire() as producer:
        for run_id in ids:
            celery_app.send_task(
                TRAIN_TASK, args=[run_id], producer=producer, retry_policy=QUICK_RETRY
            )
    from core.doorbell import mark_sent

    mark_sent(ids)


def ring(run_ids: Iterable[int]) -> bool:
    """enqueue, for callers that must not fail with the broker: False when it could not be
    reached. The runs stay queued in the database; core.doorbell sends them once it is back."""
    ids = list(run_ids)
    try:
        enqueue(ids)
    except Exception as exc:
        log.warning(
            "broker unreachable (%s); runs %s stay queued and are sent once it answers", exc, ids
        )
        return False
    return True


# A broker that does not answer within about a second is down: the caller says so (the run
# is stored and will be sent) instead of holding a request for kombu's default retries.
QUICK_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


def queue_depth() -> int | None:
    """Messages waiting in the runs queue (not those a worker holds); None when the broker
    cannot be asked."""
    try:
        with celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            # Not passive: a broker restarted empty has no such queue yet, which means 0.
            return int(conn.default_channel.queue_declare(queue=QUEUE).message_count)
    except Exception:
        log.debug("could not read the depth of queue %s", QUEUE, exc_info=True)
        return None
