"""GET /api/workers, GET /metrics and the pruning of the workers table, over rows written
as workers write them (worker_registry.worker_seen), without worker processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from core import worker_registry
from core.db import WorkerSeen, new_session, utcnow
from tests.conftest import TINY, record_epochs
from trainer.results import EpochMetrics

GPU = worker_registry.WorkerReport(
    host="gpu-host",
    pid=4242,
    started_at=utcnow(),
    device_kind="cuda",
    device_name="NVIDIA H100 80GB HBM3",
    memory_used_bytes=3 * 2**30,
    memory_total_bytes=80 * 2**30,
    utilization=87.0,
    temperature_c=61.0,
    cpu_threads=8,
)
CPU = worker_registry.WorkerReport(
    host="cpu-host", pid=99, device_kind="cpu", device_name="AMD EPYC", cpu_threads=2
)


def report(name: str, what: worker_registry.WorkerReport | None = None, age: float = 0.0) -> None:
    with new_session() as session:
        worker_registry.worker_seen(session, name, what)
        if age:
            session.execute(
                update(WorkerSeen)
                .where(WorkerSeen.name == name)
                .values(last_seen=utcnow() - timedelta(seconds=age))
            )
            session.commit()


def epoch(n: int, seconds: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=n,
        lr=0.1,
        train_loss=1.0,
        train_acc=0.5,
        test_loss=1.0,
        test_acc=0.5,
        seconds=seconds,
        images_per_second=256 / seconds,
    )


def test_live_workers_are_listed_with_their_device_and_current_run(api):
    run_id = api.post("/api/runs", json={**TINY, "epochs": 4}).json()["id"]
    record_epochs(run_id, epoch(1, 2.0), worker="gpu-host:4242")
    report("gpu-host:4242", GPU)
    report("cpu-host:99", CPU)
    report("gone-host:1", CPU, age=3600)  # silent for an hour: not live

    body = api.get("/api/workers").json()
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {"gpu-host:4242", "cpu-host:99"}
    gpu = workers["gpu-host:4242"]
    assert gpu["device_name"] == "NVIDIA H100 80GB HBM3" and gpu["utilization"] == 87.0
    assert gpu["memory_total_bytes"] == 80 * 2**30 and gpu["temperature_c"] == 61.0
    assert gpu["run"]["id"] == run_id
    assert (gpu["run"]["epochs_done"], gpu["run"]["epochs_total"]) == (1, 4)
    assert "digits" in gpu["run"]["summary"] and "width 4" in gpu["run"]["summary"]
    cpu = workers["cpu-host:99"]
    assert cpu["device_kind"] == "cpu" and cpu["cpu_threads"] == 2 and cpu["run"] is None
    assert 0 <= cpu["heartbeat_age_seconds"] < 60


def test_a_report_without_readings_keeps_the_worker_live_and_its_fields_null(api):
    report("old-release:7")  # as a worker from before revision 0003 reports
    [worker] = api.get("/api/workers").json()["workers"]
    assert worker["name"] == "old-release:7"
    assert worker["host"] is None and worker["device_kind"] is None and worker["run"] is None


def test_queue_drain_is_unknown_until_a_run_is_timed_then_shared_by_live_workers(api):
    queued = [api.post("/api/runs", json={**TINY, "epochs": 4}).json()["id"] for _ in range(3)]
    queue = api.get("/api/workers").json()["queue"]
    assert (queue["depth"], queue["running"]) == (3, 0)
    assert queue["estimated_drain_seconds"] is None and queue["basis"] == "no live worker"

    report("a:1", CPU)
    queue = api.get("/api/workers").json()["queue"]
    assert queue["estimated_drain_seconds"] is None and "timed" in queue["basis"]

    # One run timed: 1 epoch of 256 images in 2 s is 128 images/s at width 4.
    record_epochs(queued[0], epoch(1, 2.0), worker="a:1")
    queue = api.get("/api/workers").json()["queue"]
    assert (queue["depth"], queue["running"]) == (2, 1)
    # Remaining: 3 + 4 + 4 epochs of 256 images at 128 images/s, by one worker.
    assert queue["estimated_drain_seconds"] == pytest.approx(22.0)
    assert "width 4" in queue["basis"] and "1 live worker" in queue["basis"]

    report("b:2", CPU)  # two workers share it, but no run goes faster than alone
    queue = api.get("/api/workers").json()["queue"]
    assert queue["estimated_drain_seconds"] == pytest.approx(11.0)


def test_metrics_expose_runs_queue_and_live_workers_devices_in_prometheus_format(api):
    run_id = api.post("/api/runs", json={**TINY, "epochs": 4}).json()["id"]
    api.post("/api/runs", json=TINY)
    record_epochs(run_id, epoch(1, 2.0), epoch(2, 2.0), worker="gpu-host:4242")
    report("gpu-host:4242", GPU)
    report("gone-host:1", GPU, age=3600)

    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("resnet_lab_runs", (("status", "queued"),))] == 1
    assert samples[("resnet_lab_runs", (("status", "running"),))] == 1
    assert samples[("resnet_lab_runs", (("status", "lost"),))] == 0
    assert samples[("resnet_lab_queue_depth", ())] == 1
    assert samples[("resnet_lab_epochs_per_second", ())] == pytest.approx(0.5)
    up = "resnet_lab_worker_up"
    assert samples[(up, (("host", "gpu-host"), ("worker", "gpu-host:4242")))] == 1
    assert samples[(up, (("host", "gpu-host"), ("worker", "gone-host:1")))] == 0
    util = (
        "resnet_lab_worker_device_utilization",
        (("device", "cuda"), ("worker", "gpu-host:4242")),
    )
    assert samples[util] == pytest.approx(0.87)
    gone = [k for k in samples if k[0] != up and ("worker", "gone-host:1") in k[1]]
    assert gone == [], "a silent worker's old readings are not reported as present"
    temp = ("resnet_lab_worker_device_temperature_celsius", (("worker", "gpu-host:4242"),))
    assert samples[temp] == 61.0


def test_metrics_need_no_token_or_csrf(make_service):
    client = make_service(None, API_TOKEN="secret").client
    assert client.get("/metrics").status_code == 200


def test_workers_unseen_for_the_retention_are_pruned_and_recent_ones_kept(api):
    report("fresh:1", CPU)
    report("hour-old:2", CPU, age=3600)
    report("two-days-old:3", CPU, age=2 * 86400)
    with new_session() as session:
        assert worker_registry.prune_workers(session, older_than=86400) == 1
        names = set(session.scalars(select(WorkerSeen.name)))
    assert names == {"fresh:1", "hour-old:2"}


def test_workers_sharing_a_device_count_as_its_slots_and_report_their_pack(api):
    from dataclasses import replace

    report("gpu0-slot0@lab:1", replace(CPU, pid=1, pack=4))
    report("gpu0-slot1@lab:2", replace(CPU, pid=2, pack=4))
    report("other@lab:3", replace(CPU, host="other-host", pid=3))
    workers = {w["name"]: w for w in api.get("/api/workers").json()["workers"]}
    assert workers["gpu0-slot0@lab:1"]["slots"] == 2 and workers["gpu0-slot0@lab:1"]["pack"] == 4
    assert workers["other@lab:3"]["slots"] == 1 and workers["other@lab:3"]["pack"] is None
