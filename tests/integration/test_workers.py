"""A real worker process reports itself: it shows in GET /api/workers and GET /metrics with
its host, pid and device, and marks the run it takes (SQLite and PostgreSQL)."""

from __future__ import annotations

import socket

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import WorkerSeen, new_session
from tests.conftest import SQLITE_ONLY, TINY, wait_for

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(pid).children(recursive=True)}


@SQLITE_ONLY
def test_started_worker_reports_host_pid_device_and_the_run_it_took(service):
    proc = service.start_worker()

    def ours():
        workers = service.client.get("/api/workers").json()["workers"]
        return next((w for w in workers if w["pid"] in descendants(proc.pid)), None)

    worker = wait_for(ours, 120, f"the worker to report in (log: {service.logs()})")
    assert worker["host"] == socket.gethostname()
    assert worker["name"] == f"{worker['host']}:{worker['pid']}"
    assert worker["device_kind"] in ("cpu", "cuda") and worker["device_name"]
    if worker["device_kind"] == "cpu":
        assert worker["cpu_threads"] == 1  # OMP_NUM_THREADS=1 in the test service
        assert worker["memory_total_bytes"] is None and worker["temperature_c"] is None
    assert worker["started_at"] is not None

    text = service.client.get("/metrics").text
    up = {
        s.labels["worker"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "resnet_lab_worker_up"
    }
    assert up[worker["name"]] == 1

    response = service.client.post("/api/runs", json=TINY)
    run_id = response.json()["id"]
    run = service.wait_status(run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["worker"] == worker["name"]
    with new_session() as session:
        assert session.get(WorkerSeen, worker["name"]).run_id == run_id
