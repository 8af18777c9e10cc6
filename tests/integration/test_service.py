"""The service end to end: real Redis, real Celery worker processes, and a real database:
each test runs on a SQLite file and on PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import io
import os
import signal

import pytest
import torch

from tests.conftest import SQLITE_ONLY, TINY, wait_for

pytestmark = pytest.mark.integration


def submit(service, **overrides) -> int:
    response = service.client.post("/api/runs", json={**TINY, **overrides})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_tiny_run_goes_queued_running_succeeded_with_one_row_per_epoch(service):
    run_id = submit(service, epochs=2, train_limit=512)
    assert service.run(run_id)["status"] == "queued"
    service.start_worker()

    seen = []

    def finished():
        status = service.run(run_id)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in ("succeeded", "failed")

    wait_for(finished, 120, "the run to finish", every=0.05)
    run = service.run(run_id)
    assert seen[0] == "queued" and "running" in seen and seen[-1] == "succeeded", seen
    epochs = service.metrics(run_id)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert run["final_test_acc"] == epochs[-1]["test_acc"]
    assert run["best_test_acc"] == max(e["test_acc"] for e in epochs)
    assert run["attempts"] == 1 and run["started_at"] and run["finished_at"]
    assert len(run["result"]["confusion_matrix"]) == 10
    assert sum(map(sum, run["result"]["confusion_matrix"])) == TINY["test_limit"]
    assert run["environment"]["torch"]
    logs = service.client.get(f"/api/runs/{run_id}/logs").json()["lines"]
    assert any("epoch 2/2: test accuracy" in line["message"] for line in logs), logs

    download = service.client.get(f"/api/runs/{run_id}/checkpoint")
    assert download.status_code == 200
    state = torch.load(io.BytesIO(download.content), weights_only=True)
    assert state["epoch"] == 2 and state["config"]["dataset"] == "digits"


def test_sweep_2x2_with_two_seeds_finishes_with_mean_and_spread_per_cell(service):
    body = {
        "name": "tiny grid",
        "base": {**TINY, "epochs": 1},
        "grid": {"activation": ["relu", "tanh"], "lr_ratio": ["2:1:1", "5:4:1"]},
        "seeds": [0, 1],
    }
    response = service.client.post("/api/sweeps", json=body)
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert len(sweep["run_ids"]) == 8
    service.start_worker()
    service.start_worker()

    def done():
        s = service.client.get(f"/api/sweeps/{sweep['id']}").json()
        return s["counts"]["succeeded"] == 8 and s

    summary = wait_for(done, 240, "the sweep to finish")
    assert summary["progress"] == 1.0
    assert len(summary["cells"]) == 4
    for cell in summary["cells"]:
        assert cell["n"] == 2
        assert 0 <= cell["mean"] <= 1
        assert cell["std"] is not None and cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    finals = {r: service.run(r)["final_test_acc"] for r in sweep["run_ids"]}
    relu_211 = next(
        c for c in summary["cells"] if c["key"] == {"activation": "relu", "lr_ratio": "2:1:1"}
    )
    expected = sum(finals[r] for r in relu_211["run_ids"]) / 2
    assert relu_211["mean"] == pytest.approx(expected)
    csv = service.client.get(f"/api/sweeps/{sweep['id']}.csv")
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 9


@SQLITE_ONLY
def test_cancel_stops_a_running_run_within_seconds_and_worker_takes_the_next(service):
    long_id = submit(service, epochs=200, train_limit=1024, width=8)
    next_id = submit(service)
    service.start_worker()
    wait_for(lambda: service.run(long_id)["epochs_done"] >= 1, 120, "the first epoch")

    response = service.client.post(f"/api/runs/{long_id}/cancel")
    assert response.status_code == 200
    service.wait_status(long_id, {"cancelled"}, timeout=60)
    assert service.run(long_id)["epochs_done"] < 200

    assert service.wait_status(next_id, {"succeeded"})["status"] == "succeeded"
    assert service.client.post(f"/api/runs/{long_id}/cancel").status_code == 409


def test_sigkill_of_worker_mid_run_then_new_worker_finishes_with_every_epoch_once(service):
    run_id = submit(service, epochs=6, train_limit=1024, width=8)
    first = service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 2, 120, "two epochs")
    service.kill_worker(first)
    assert service.run(run_id)["status"] == "running"

    service.start_worker()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=180)
    assert run["status"] == "succeeded", run["error"]
    epochs = [e["epoch"] for e in service.metrics(run_id)]
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert run["attempts"] == 2
    assert run["result"]["resumed_from_epoch"] >= 2


@SQLITE_ONLY
def test_trainer_exception_fails_the_run_and_the_worker_takes_the_next(service):
    # Offline, with no CIFAR-10 files in DATA_DIR, the trainer raises.
    bad_id = submit(service, dataset="cifar10")
    good_id = submit(service)
    service.start_worker()
    bad = service.wait_status(bad_id, {"failed", "succeeded"})
    assert bad["status"] == "failed"
    assert "cifar-10-python.tar.gz" in bad["error"]
    assert service.wait_status(good_id, {"succeeded", "failed"})["status"] == "succeeded"


def read_events(client, url: str, until: str = "end") -> list[tuple[str, dict]]:
    import json

    events, name = [], None
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name == until:
                    return events
    return events


@SQLITE_ONLY
def test_run_events_stream_every_epoch_and_status_change_then_end(service):
    run_id = submit(service, epochs=3)
    service.start_worker()
    events = read_events(service.client, f"/api/runs/{run_id}/events")
    epochs = [data["epoch"] for name, data in events if name == "epoch"]
    statuses = [data["status"] for name, data in events if name == "status"]
    assert epochs == [1, 2, 3]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "succeeded"
    assert events[-1][0] == "end"
    # A client that reconnects after epoch 2 gets only what it missed.
    again = read_events(service.client, f"/api/runs/{run_id}/events?after_epoch=2")
    assert [d["epoch"] for n, d in again if n == "epoch"] == [3]


def test_sweep_events_report_each_run_and_epoch(service):
    body = {"base": {**TINY, "epochs": 2}, "grid": {"activation": ["relu", "tanh"]}}
    sweep = service.client.post("/api/sweeps", json=body).json()
    service.start_worker()
    seen_epochs: set[tuple[int, int]] = set()
    done: set[int] = set()
    import json

    with service.client.stream("GET", f"/api/sweeps/{sweep['id']}/events") as response:
        name = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if name == "epoch":
                    seen_epochs.add((data["run_id"], data["epoch"]))
                elif name == "run" and data["status"] == "succeeded":
                    done.add(data["id"])
                if done == set(sweep["run_ids"]):
                    break
    assert seen_epochs == {(r, e) for r in sweep["run_ids"] for e in (1, 2)}


@SQLITE_ONLY
def test_sigterm_puts_the_running_run_back_in_the_queue_and_the_next_worker_resumes_it(
    service,
):
    run_id = submit(service, epochs=200, train_limit=1024, width=8)
    worker = service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= 1, 120, "the first epoch")

    os.killpg(worker.pid, signal.SIGTERM)  # what Ctrl-C on `resnet-lab serve` sends
    worker.wait(timeout=60)  # a warm shutdown that does not wait for 200 epochs
    run = service.run(run_id)
    assert run["status"] == "queued", run
    done = run["epochs_done"]

    service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] > done, 120, "the run to resume")
    assert service.client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    run = service.wait_status(run_id, {"cancelled"}, timeout=60)
    assert run["result"]["resumed_from_epoch"] >= done
    epochs = [e["epoch"] for e in service.metrics(run_id)]
    assert epochs == list(range(1, len(epochs) + 1))
