"""Hands run ids to Celery. The row is committed first; the message carries only the id."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from celery import Celery

from app.config import get_settings


@lru_cache
def _celery_for(broker_url: str) -> Celery:
    from worker.celery_app import make_celery

    return make_celery()


def celery() -> Celery:
    """The Celery app for the configured broker (tests switch brokers between runs)."""
    return _celery_for(get_settings().resolved_broker_url)


def enqueue(run_ids: Iterable[int]) -> None:
    from worker.celery_app import TRAIN_TASK

    celery_app = celery()
    ids = list(run_ids)
    if not ids:
        return
    # One broker connection for the whole batch: a 108-run grid is sent in one go.
    with celery_app.producer_or_acquire() as producer:
        for run_id in ids:
            celery_app.send_task(TRAIN_TASK, args=[run_id], producer=producer)
