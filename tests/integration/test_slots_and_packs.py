"""Several runs on one device: `resnet-lab worker --slots K` (K worker processes)."""

from __future__ import annotations

import pytest

from tests.conftest import TINY, wait_for

pytestmark = pytest.mark.integration

LONGER = {**TINY, "epochs": 4, "width": 8, "train_limit": 1024}


def submit(client, **config) -> int:
    response = client.post("/api/runs", json=config)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_two_slots_train_two_runs_at_once_each_in_its_own_process(make_service):
    service = make_service(None)
    first, second = (submit(service.client, **LONGER, seed=s) for s in (0, 1))
    service.start_worker("slots@test", "--slots", "2")

    def both_running():
        runs = [service.run(first), service.run(second)]
        return all(r["status"] == "running" for r in runs) and runs

    runs = wait_for(both_running, 180, f"both runs to train at once ({service.logs()})")
    assert runs[0]["worker"] != runs[1]["worker"]  # two processes, one run each
    for run_id in (first, second):
        done = service.wait_status(run_id, {"succeeded", "failed"}, timeout=240)
        assert done["status"] == "succeeded", done["error"]


# Four compatible runs: one pack of 4 (same dataset, width, batch size, precision).
GRID = {
    "base": {**TINY, "epochs": 3, "width": 8, "train_limit": 512},
    "grid": {"activation": ["relu", "tanh"]},
    "seeds": [0, 1],
}


def test_a_pack_of_four_trains_a_grid_with_each_members_epochs_checkpoint_and_cancel(
    make_service,
):
    service = make_service(None)
    sweep = service.client.post("/api/sweeps", json=GRID).json()
    ids = sweep["run_ids"]
    service.start_worker("packer@test", "--pack", "4")
    wait_for(
        lambda: all(service.run(i)["status"] == "running" for i in ids),
        180,
        f"the four runs to train together ({service.logs()})",
    )
    cancelled = ids[1]
    assert service.client.post(f"/api/runs/{cancelled}/cancel").status_code == 200

    for run_id in ids:
        run = service.wait_status(run_id, {"succeeded", "failed", "cancelled"}, timeout=300)
        if run_id == cancelled:
            assert run["status"] == "cancelled", run["error"]
            assert run["epochs_done"] < 3
            continue
        assert run["status"] == "succeeded", run["error"]
        assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3]
        assert run["environment"]["pack"] == ",".join(map(str, ids))
        assert run["has_checkpoint"]
        download = service.client.get(f"/api/runs/{run_id}/checkpoint")
        assert download.status_code == 200 and len(download.content) > 1000
    # Each member learned its own run: the two activations give different curves.
    relu, tanh = (service.metrics(i) for i in (ids[0], ids[2]))
    assert [e["train_loss"] for e in relu] != [e["train_loss"] for e in tanh]


def test_a_sigkill_mid_pack_resumes_every_member_from_its_own_checkpoint(make_service):
    service = make_service(None)
    sweep = service.client.post("/api/sweeps", json=GRID).json()
    ids = sweep["run_ids"]
    worker = service.start_worker("packer@test", "--pack", "4")
    wait_for(
        lambda: all(service.run(i)["epochs_done"] >= 1 for i in ids),
        240,
        f"every member's first epoch ({service.logs()})",
    )
    service.kill_worker(worker)
    service.start_worker("packer2@test", "--pack", "4")

    for run_id in ids:
        run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=300)
        assert run["status"] == "succeeded", run["error"]
        assert run["attempts"] == 2
        assert run["result"]["resumed_from_epoch"] >= 1
        assert [e["epoch"] for e in service.metrics(run_id)] == [1, 2, 3]
