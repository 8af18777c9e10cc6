"""Faults with real processes: killed workers, a restarted Redis, a killed web app,
corrupt checkpoints. Each test fails if the promise it names breaks, on SQLite and on
PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
import torch

from tests.conftest import (
    ROOT,
    SQLITE_ONLY,
    TINY,
    RedisServer,
    service_env,
    start_serve,
    wait_for,
)

pytestmark = pytest.mark.integration

# Long enough that a kill lands mid-run; small enough for seconds per epoch on 2 cores.
KILLABLE = {**TINY, "epochs": 7, "width": 8, "train_limit": 1024, "augmentation": "crop_flip"}
TIMING_FIELDS = {"seconds", "images_per_second"}


def submit(client, **config) -> int:
    response = client.post("/api/runs", json=config)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def learning_curve(service, run_id: int) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in service.metrics(run_id)
    ]


# SQLite only: the slowest test here, and what it adds (bit-exact resumes) is the
# checkpoint's, not the database's; kills on PostgreSQL are covered by the tests below and
# by test_service.py's SIGKILL test.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_three_sigkills_mid_run_still_complete_with_the_uninterrupted_metrics(service):
    killable = {**KILLABLE, "epochs": 5}
    reference = submit(service.client, **killable)
    worker = service.start_worker()
    service.wait_status(reference, {"succeeded"}, timeout=180)
    service.kill_worker(worker)

    run_id = submit(service.client, **killable)
    for kill in range(1, 4):
        worker = service.start_worker()
        wait_for(lambda k=kill: service.run(run_id)["epochs_done"] >= k, 120, f"epoch {kill}")
        service.kill_worker(worker)  # epoch kill + 1 is in progress
    service.start_worker()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=180)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempts"] == 4
    assert [e["epoch"] for e in service.metrics(run_id)] == list(range(1, 6))
    assert learning_curve(service, run_id) == learning_curve(service, reference)
    ref = service.run(reference)
    assert run["final_test_acc"] == ref["final_test_acc"]
    assert run["result"]["confusion_matrix"] == ref["result"]["confusion_matrix"]


@SQLITE_ONLY
def test_killed_worker_with_no_successor_is_lost_in_time_and_retry_finishes_it(service):
    run_id = submit(service.client, **{**KILLABLE, "epochs": 4})
    worker = service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 1, 120, "the first epoch")
    service.kill_worker(worker)

    # Due within HEARTBEAT_TIMEOUT + REAPER_INTERVAL (4 s); the deadline leaves room for load.
    run = service.wait_status(run_id, {"lost"}, timeout=60)
    assert run["error"]

    retried = service.client.post(f"/api/runs/{run_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    service.start_worker()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=120)
    assert run["status"] == "succeeded", run["error"]
    assert run["result"]["resumed_from_epoch"] >= 1
    assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3, 4]


@SQLITE_ONLY
def test_redis_restart_during_a_sweep_loses_no_queued_or_running_run(
    make_service, tmp_path, database_url
):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        service = make_service(redis.url, database_url)
        body = {
            "base": {**TINY, "epochs": 3},
            "grid": {"activation": ["relu", "tanh"]},
            "seeds": [0, 1, 2],
        }
        sweep = service.client.post("/api/sweeps", json=body).json()
        service.start_worker()
        summary = lambda: service.client.get(f"/api/sweeps/{sweep['id']}").json()  # noqa: E731
        wait_for(lambda: summary()["counts"]["succeeded"] >= 1, 120, "a first finished run")
        assert summary()["counts"]["queued"] >= 1

        redis.stop()  # appendfsync always: the queue is on disk
        redis.start()

        done = wait_for(
            lambda: (s := summary())["counts"]["succeeded"] == 6 and s,
            240,
            f"every run to finish after the restart ({service.logs()})",
        )
        assert done["progress"] == 1.0
        for run_id in sweep["run_ids"]:
            assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3]
    finally:
        redis.stop()


def test_a_worker_woken_after_a_takeover_at_the_epoch_boundary_writes_no_checkpoint(
    make_service, redis_url
):
    import redis

    from trainer import checkpoint

    redis.Redis.from_url(redis_url).flushdb()
    service = make_service(redis_url)
    run_id = submit(service.client, **{**TINY, "epochs": 6})
    # The first worker stops itself (SIGSTOP) right before it publishes epoch 2's checkpoint:
    # the moment a woken worker used to rename its file over its successor's.
    paused = service.start_worker("paused@test", RESNET_LAB_TEST_FAULT="pause:2")
    first = wait_for(
        lambda: (r := service.run(run_id))["epochs_done"] == 1 and r["worker"] and r,
        120,
        "epoch 1",
    )
    sleeper = int(first["worker"].rsplit(":", 1)[1])
    wait_for(lambda: psutil.Process(sleeper).status() == psutil.STATUS_STOPPED, 60, "the pause")
    service.start_worker("successor@test")
    wait_for(
        lambda: (
            (r := service.run(run_id))["worker"] != first["worker"] and r["epochs_done"] >= 4 and r
        ),
        120,
        f"the successor to train past epoch 4 ({service.logs()})",
    )
    from core.paths import run_dir

    directory = run_dir(service.home / "runs", run_id)
    os.kill(sleeper, signal.SIGCONT)

    wait_for(lambda: "publishes no checkpoint" in service.logs(), 60, "the woken worker's fence")
    assert checkpoint.peek(directory)["epoch"] >= 4, "the successor's checkpoint stands"
    done = service.wait_status(run_id, {"succeeded", "failed"}, timeout=240)
    assert done["status"] == "succeeded", done["error"]
    assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3, 4, 5, 6]
    assert paused.poll() is None


def test_a_broker_restarted_empty_strands_no_queued_run_and_a_submission_meanwhile_runs(
    make_service, tmp_path
):
    redis = RedisServer(tmp_path / "redis", persistent=False)
    redis.start()
    try:
        service = make_service(redis.url, RESEND_AFTER="2")
        run = {**TINY, "epochs": 3}
        first = submit(service.client, **run)
        waiting = [submit(service.client, **run) for _ in range(2)]
        service.start_worker()
        service.wait_status(first, {"running"}, timeout=120)

        redis.stop()
        # The broker is down: the run is stored and answered 201, sent once it is back.
        late = submit(service.client, **run)
        assert service.run(late)["status"] == "queued"
        redis.start()  # empty: the two waiting runs' messages are gone

        for run_id in [first, *waiting, late]:
            done = service.wait_status(run_id, {"succeeded", "failed"}, timeout=240)
            assert done["status"] == "succeeded", done["error"]
            assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3]
        assert service.client.get("/api/runs").json()["total"] == 4, "nothing stored twice"
    finally:
        redis.stop()


@SQLITE_ONLY
def test_killing_the_web_app_mid_sweep_loses_and_sticks_nothing(tmp_path, redis_url, database_url):
    import redis as redis_client

    redis_client.Redis.from_url(redis_url).flushdb()
    home = tmp_path / "home"
    env = service_env(home, redis_url, database_url)
    app, base = start_serve("--workers", "0", env=env)
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--name", "w@test"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        body = {
            "base": {**TINY, "epochs": 2},
            "grid": {"lr_ratio": ["2:1:1", "5:4:1"]},
            "seeds": [0, 1],
        }
        sweep = httpx.post(f"{base}/api/sweeps", json=body).json()
        sweep_url = f"{base}/api/sweeps/{sweep['id']}"
        wait_for(lambda: httpx.get(sweep_url).json()["counts"]["succeeded"] >= 1, 120, "a run")
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()

        app, base = start_serve("--workers", "0", env=env)  # a new process, on a new port
        sweep_url = f"{base}/api/sweeps/{sweep['id']}"
        done = wait_for(
            lambda: (s := httpx.get(sweep_url).json())["counts"]["succeeded"] == 4 and s,
            180,
            "the sweep to finish after the app restarted",
        )
        assert sum(done["counts"].values()) == 4
        for run_id in sweep["run_ids"]:
            epochs = httpx.get(f"{base}/api/runs/{run_id}/metrics").json()["epochs"]
            assert [e["epoch"] for e in epochs] == [1, 2]
    finally:
        for proc in (app, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@SQLITE_ONLY
def test_truncated_checkpoint_is_reported_and_the_run_resumes_from_the_previous_one(service):
    run_id = submit(service.client, **{**KILLABLE, "epochs": 5})
    reference = submit(service.client, **{**KILLABLE, "epochs": 5})
    worker = service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 2, 120, "two epochs")
    service.kill_worker(worker)

    last = service.home / "runs" / f"run-{run_id}" / "last.pt"
    last_epoch = torch.load(last, weights_only=True)["epoch"]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])

    worker = service.start_worker()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=180)
    assert run["status"] == "succeeded", run["error"]
    assert run["result"]["resumed_from_epoch"] == last_epoch - 1
    assert any("last.pt" in w for w in run["result"]["warnings"]), run["result"]["warnings"]
    assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3, 4, 5]

    service.wait_status(reference, {"succeeded"}, timeout=180)
    assert worker.poll() is None, "the worker survives a corrupt checkpoint"
    assert learning_curve(service, run_id) == learning_curve(service, reference)
