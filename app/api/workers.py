"""GET /api/workers: the live workers, what each trains, and the queue."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter

from app import workers as data
from app.api.deps import SessionDep, SettingsDep
from app.schemas import WorkersOut
from core.db import WorkerSeen, utcnow

router = APIRouter(tags=["workers"])

_READINGS = (
    "host",
    "pid",
    "started_at",
    "device_kind",
    "device_name",
    "memory_used_bytes",
    "memory_total_bytes",
    "utilization",
    "temperature_c",
    "cpu_threads",
    "pack",
)


def _device(worker: WorkerSeen) -> tuple:
    """Workers on one host and device share it: they are its slots."""
    return (worker.host, worker.device_kind, worker.device_name)


def _worker(worker: WorkerSeen, run, slots: int) -> dict:
    return {
        "name": worker.name,
        "slots": slots,
        "last_seen": worker.last_seen,
        "heartbeat_age_seconds": max(0.0, (utcnow() - worker.last_seen).total_seconds()),
        **{key: getattr(worker, key) for key in _READINGS},
        "run": None
        if run is None
        else {
            "id": run.id,
            "name": run.name,
            "summary": data.run_summary(run),
            "epochs_done": run.epochs_done,
            "epochs_total": run.epochs_total,
            "heartbeat_at": run.heartbeat_at,
        },
    }


@router.get("/api/workers", response_model=WorkersOut)
def list_workers(session: SessionDep, settings: SettingsDep) -> dict:
    """Workers that reported within two recovery periods (plus slack), with their device
    readings and current run; and the queue: runs queued and running, and an estimate of
    when all of them are done, from the speeds workers measured (null, with the reason in
    `basis`, when nothing has been timed yet or no worker is live)."""
    live = data.live_workers(session, settings)
    slots = Counter(_device(w) for w in live)
    runs = data.running_by_worker(session, [w.name for w in live])
    queue = data.queue_state(session, len(live))
    return {
        "workers": [_worker(w, runs.get(w.name), slots[_device(w)]) for w in live],
        "queue": {
            "depth": queue.depth,
            "running": queue.running,
            "estimated_drain_seconds": queue.drain.seconds,
            "basis": queue.drain.basis,
        },
    }
