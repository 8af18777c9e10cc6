"""Workers stuck or dying in native code, with real processes and injected faults
(RESNET_LAB_TEST_FAULT): a stalled run is failed and its worker replaced, an abort() is a
crash like SIGKILL, and stopping `serve` or `worker` is bounded and leaves no process."""

from __future__ import annotations

import os
import signal

import httpx
import psutil
import pytest

from tests.conftest import SQLITE_ONLY, TINY, service_env, start_serve, wait_for

pytestmark = pytest.mark.integration

# 256 images at batch 64: 4 batches an epoch.
RUN = {**TINY, "epochs": 3}


def submit(client, **config) -> int:
    response = client.post("/api/runs", json=config)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(processes: list[psutil.Process]) -> None:
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[(p.pid, p.cmdline()[:6]) for p in alive]}"


def test_a_stalled_run_fails_with_the_stall_message_and_a_new_worker_takes_the_next(
    make_service, redis_url
):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    service = make_service(redis_url, RESNET_LAB_TEST_FAULT="hang:3", STALL_TIMEOUT="6")
    stuck = submit(service.client, **RUN)
    worker = service.start_worker()
    stuck_by = service.wait_status(stuck, {"running"}, timeout=120)["worker"]
    next_id = submit(service.client, **RUN)

    # Shown as stalled while still running, before the worker gives it up.
    shown = wait_for(
        lambda: (r := service.run(stuck))["stalled_seconds"] is not None and r,
        120,
        f"the run to show as stalled ({service.logs()})",
    )
    assert shown["status"] == "running" and shown["batches_done"] == 3
    assert shown["environment"]["device"] == "cpu"  # filled in when training starts

    run = service.wait_status(stuck, {"failed"}, timeout=120)
    assert run["error"].startswith("stalled: no batch finished in"), run["error"]
    assert run["epochs_done"] == 0

    # The stuck process exited; the supervisor's new one trains the next run.
    done = service.wait_status(next_id, {"succeeded", "failed"}, timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["worker"] != stuck_by
    assert worker.poll() is None, "the supervising `resnet-lab worker` stays up"


def log_lines(service, run_id: int) -> list[str]:
    return [
        line["message"] for line in service.client.get(f"/api/runs/{run_id}/logs").json()["lines"]
    ]


def attempts(service, run_id: int) -> dict:
    response = service.client.get(f"/api/runs/{run_id}/attempts")
    assert response.status_code == 200, response.text
    return response.json()


def test_an_abort_in_native_code_tells_its_story_and_resumes_the_run(make_service, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    # Batch 6 is batch 2 of epoch 2: epoch 1 is checkpointed, then the process aborts.
    service = make_service(redis_url, RESNET_LAB_TEST_FAULT="abort:6")
    run_id = submit(service.client, **RUN)
    service.start_worker()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=240)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempts"] == 2
    assert run["result"]["resumed_from_epoch"] == 1
    assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3]
    assert "SIGABRT" in service.logs()

    # The run's own log says what died, where, and how the next attempt began.
    lines = log_lines(service, run_id)
    died = [line for line in lines if "died (SIGABRT" in line]
    assert len(died) == 1 and "in epoch 2, batch 2 of 4" in died[0], lines
    assert "Fatal Python error: Aborted" in died[0], "faulthandler's report is in the story"
    assert any("starting fresh" in line for line in lines), lines
    assert any("resumed from epoch 1 of 3" in line for line in lines), lines
    history = attempts(service, run_id)
    assert [(a["attempt"], a["outcome"]) for a in history["attempts"]] == [
        (1, "crashed"),
        (2, "succeeded"),
    ]
    assert "SIGABRT" in history["attempts"][0]["detail"]
    assert history["crashes"] == 1 and history["last_crash_at"] == "epoch 2, batch 2 of 4"
    # Timestamps of one attempt belong together: queued again before it started again.
    assert run["queued_at"] <= run["started_at"] <= run["finished_at"]


def test_a_run_that_keeps_crashing_its_worker_fails_after_three_and_the_next_run_trains(
    make_service, redis_url
):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    # Every attempt aborts at its 6th batch; the next run has only 4 batches and never does.
    service = make_service(redis_url, RESNET_LAB_TEST_FAULT="abort:6:always")
    doomed = submit(service.client, **RUN)
    healthy = submit(service.client, **{**RUN, "epochs": 1})
    service.start_worker()
    run = service.wait_status(doomed, {"succeeded", "failed"}, timeout=240)

    assert run["status"] == "failed"
    assert run["attempts"] == 3
    assert run["error"].startswith("crashed its worker 3 times (SIGABRT in epoch 2, batch 2 of 4)")
    assert "last error: Fatal Python error: Aborted" in run["error"]
    outcomes = [a["outcome"] for a in attempts(service, doomed)["attempts"]]
    assert outcomes == ["crashed", "crashed", "crashed"]
    assert service.wait_status(healthy, {"succeeded", "failed"}, timeout=240)["status"] == (
        "succeeded"
    )

    # A person's retry clears the crash count and tries again (here: it crashes again).
    assert service.client.post(f"/api/runs/{doomed}/retry").status_code == 200
    assert attempts(service, doomed)["crashes"] == 0


@pytest.mark.parametrize("stuck", ["hung", "stopped"])
def test_serve_stops_within_its_grace_period_and_leaves_no_process(tmp_path, stuck):
    home = tmp_path / "home"
    env = service_env(home, None, RESNET_LAB_TEST_FAULT="hang:2", STOP_GRACE="5")
    serve, base = start_serve("--workers", "2", env=env, log=tmp_path / "serve.log")
    try:
        run_id = httpx.post(f"{base}/api/runs", json=RUN).json()["id"]
        wait_for(
            lambda: httpx.get(f"{base}/api/runs/{run_id}").json()["batches_done"] >= 2,
            120,
            "the run to hang",
        )
        children = descendants(serve.pid)
        assert len(children) == 2
        if stuck == "stopped":
            for child in children:
                child.suspend()  # SIGSTOP: no handler of its own will ever run

        serve.send_signal(signal.SIGTERM)
        # Grace 5 s, then SIGKILL: the deadline is only there to fail instead of hanging.
        assert serve.wait(timeout=120) == 0
        assert_all_gone(children)
        assert "did not stop in time; killing it" in (tmp_path / "serve.log").read_text()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def test_worker_stops_within_its_grace_period_even_when_training_is_stuck(make_service):
    service = make_service(None, RESNET_LAB_TEST_FAULT="hang:2", STOP_GRACE="5")
    run_id = submit(service.client, **RUN)
    worker = service.start_worker()
    wait_for(lambda: service.run(run_id)["batches_done"] >= 2, 120, "the run to hang")
    children = descendants(worker.pid)
    assert children, "the Celery worker runs as a child of `resnet-lab worker`"

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0
    assert_all_gone(children)


# SQLite only: the takeover's compare-and-set on PostgreSQL is test_service.py's SIGKILL test.
@SQLITE_ONLY
def test_a_woken_superseded_worker_cannot_touch_the_run_its_successor_owns(service):
    run_id = submit(service.client, **{**TINY, "epochs": 8, "width": 8, "train_limit": 1024})
    first = service.start_worker("first@test")
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 1, 120, "the first epoch")
    os.killpg(first.pid, signal.SIGSTOP)  # the whole first worker freezes mid-epoch
    try:
        second = service.start_worker("second@test")
        successor = wait_for(lambda: descendants(second.pid), 30, "the second worker's child")
        wait_for(
            lambda: service.run(run_id)["worker"].endswith(f":{successor[0].pid}"),
            120,
            f"the second worker to take the run over ({service.logs()})",
        )
    finally:
        os.killpg(first.pid, signal.SIGCONT)

    run = service.wait_status(run_id, {"succeeded", "failed", "cancelled"}, timeout=240)
    assert run["status"] == "succeeded", run["error"]
    assert run["worker"].endswith(f":{successor[0].pid}")
    assert run["attempts"] == 2
    assert [e["epoch"] for e in service.metrics(run_id)] == list(range(1, 9))
    assert "taken over by another worker" in (service.home / "first.log").read_text()
    assert first.poll() is None, "the woken worker carries on serving the queue"
