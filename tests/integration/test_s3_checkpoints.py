"""Checkpoints in S3: a run whose worker is SIGKILLed on one host resumes on another host
from the published checkpoint. The S3 API is moto's standalone server, a real process; the
two hosts are two worker processes with separate CACHE_DIRs and nothing else in common but
the database, the broker and the bucket."""

from __future__ import annotations

import io

import pytest
import torch

from tests.conftest import wait_for
from tests.integration.test_faults import KILLABLE, learning_curve, submit

pytestmark = pytest.mark.integration

CONFIG = {**KILLABLE, "epochs": 5}


# SQLite only: what this adds is the checkpoint's path between hosts, not the database's.
@pytest.mark.timeout(900)  # two runs of real training on a shared 2-core machine
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_run_killed_on_one_host_resumes_on_another_from_s3_with_the_same_metrics(
    make_service, redis_url, database_url, s3_server, s3_bucket, tmp_path
):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    service = make_service(
        redis_url,
        database_url,
        RUNS_DIR=f"s3://{s3_bucket}/runs",
        CACHE_DIR=str(tmp_path / "app-cache"),
        **s3_server.env(),
    )
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"

    reference = submit(service.client, **CONFIG)
    worker_a = service.start_worker("a@host-a", CACHE_DIR=str(host_a))
    service.wait_status(reference, {"succeeded"}, timeout=600)

    run_id = submit(service.client, **CONFIG)
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 2, 300, "two epochs on host A")
    service.kill_worker(worker_a)  # mid-epoch 3 or later, no warning

    assert not host_b.exists()  # host B has never seen the run: S3 is its only source
    service.start_worker("b@host-b", CACHE_DIR=str(host_b))
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=600)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempts"] == 2
    assert run["result"]["resumed_from_epoch"] >= 1
    assert [e["epoch"] for e in service.metrics(run_id)] == list(range(1, CONFIG["epochs"] + 1))
    assert learning_curve(service, run_id) == learning_curve(service, reference)
    ref = service.run(reference)
    assert run["final_test_acc"] == ref["final_test_acc"]
    assert run["result"]["confusion_matrix"] == ref["result"]["confusion_matrix"]
    assert (host_b / "runs" / f"run-{run_id}" / "last.pt").is_file()
    assert not (service.home / "runs").exists()  # nothing went to a local RUNS_DIR

    response = service.client.get(f"/api/runs/{run_id}/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith(f'"run-{run_id}-last.pt"')
    state = torch.load(io.BytesIO(response.content), weights_only=True)
    assert state["epoch"] == CONFIG["epochs"]
    assert [row["test_acc"] for row in state["history"]] == [
        row["test_acc"] for row in learning_curve(service, run_id)
    ]
