"""The Celery app the workers run (built in core.queue, like the web app's). Start a worker
with `resnet-lab worker` or `celery -A worker.celery_app worker`."""

from __future__ import annotations

from core.queue import TRAIN_TASK, celery

__all__ = ["TRAIN_TASK", "app", "celery_app"]

celery_app = celery()
app = celery_app


def _connect_recovery() -> None:
    from worker.recovery import connect_signals

    connect_signals()


_connect_recovery()
