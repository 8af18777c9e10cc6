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
