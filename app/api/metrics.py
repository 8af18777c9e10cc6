"""GET /metrics: runs, queue and workers in Prometheus's text format.

A custom collector reads the database at scrape time, in one short session, so every web
process answers the same and nothing is counted in memory that a restart would lose.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app import workers as data
from core.config import get_settings
from core.db import Run, RunStatus, new_session

router = APIRouter(tags=["health"])


def epochs_per_second(session) -> float:
    """The rate at which running runs finish epochs now, from their own timings: the sum
    over running runs of epochs done / seconds those epochs took. Epochs have no finish
    time in the database, so this is a measured speed, not a count over the last minute."""
    rate = session.scalar(
        select(func.sum(Run.epochs_done / Run.train_seconds)).where(
            Run.status == RunStatus.running.value, Run.epochs_done > 0, Run.train_seconds > 0
        )
    )
    return float(rate or 0.0)


class LabCollector:
    def collect(self):
        settings = get_settings()
        with new_session() as session:
            counts = data.counts_by_status(session)
            eps = epochs_per_second(session)
            workers = data.all_workers(session)
            live = {w.name for w in data.live_workers(session, settings)}

        runs = GaugeMetricFamily("resnet_lab_runs", "Runs by status.", labels=["status"])
        for status, n in counts.items():
            runs.add_metric([status], n)
        yield runs
        yield GaugeMetricFamily(
            "resnet_lab_queue_depth", "Runs queued.", value=counts[RunStatus.queued.value]
        )
        yield GaugeMetricFamily(
            "resnet_lab_epochs_per_second",
            "Epochs per second that running runs finish, from their measured epoch times.",
            value=eps,
        )

        up = GaugeMetricFamily(
            "resnet_lab_worker_up",
            "1 for a worker that reported in lately, 0 for one gone silent (until pruned).",
            labels=["worker", "host"],
        )
        families = {
            "utilization": GaugeMetricFamily(
                "resnet_lab_worker_device_utilization",
                "Device utilisation, 0-1: the GPU's, or on a CPU the process's CPU time.",
                labels=["worker", "device"],
            ),
            "memory_used_bytes": GaugeMetricFamily(
                "resnet_lab_worker_device_memory_used_bytes", "GPU memory used.", labels=["worker"]
            ),
            "memory_total_bytes": GaugeMetricFamily(
                "resnet_lab_worker_device_memory_total_bytes", "GPU memory.", labels=["worker"]
            ),
            "temperature_c": GaugeMetricFamily(
                "resnet_lab_worker_device_temperature_celsius",
                "GPU temperature.",
                labels=["worker"],
            ),
        }
        for worker in workers:
            up.add_metric([worker.name, worker.host or ""], 1 if worker.name in live else 0)
            if worker.name not in live:
                continue  # a silent worker's last readings are not its present ones
            if worker.utilization is not None:
                device = worker.device_kind or ""
                families["utilization"].add_metric([worker.name, device], worker.utilization / 100)
            for key in ("memory_used_bytes", "memory_total_bytes", "temperature_c"):
                value = getattr(worker, key)
                if value is not None:
                    families[key].add_metric([worker.name], value)
        yield up
        yield from families.values()


registry = CollectorRegistry()
registry.register(LabCollector())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics() -> Response:
    """Prometheus exposition: resnet_lab_runs{status}, resnet_lab_queue_depth,
    resnet_lab_epochs_per_second, resnet_lab_worker_up{worker,host} and the live workers'
    device utilisation (0-1), memory (bytes) and temperature (°C)."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
