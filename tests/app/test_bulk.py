"""Bulk actions (POST /api/runs/bulk) and the CSV export that follows the runs page's view
(GET /api/runs.csv with filters, columns and sort), over a real SQLite file."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from app.api import bulk
from core import lifecycle
from core.config import get_settings
from core.db import Metric, Run, new_session
from core.store import open_store
from tests.app.test_api import count_runs
from tests.conftest import TINY, epoch_row, record_epochs
from trainer.config import TrainConfig
from trainer.results import RunResult


def submit(api, n: int = 1, **config) -> list[int]:
    return [api.post("/api/runs", json={**TINY, **config}).json()["id"] for _ in range(n)]


def succeed(run_id: int, acc: float) -> None:
    owner = record_epochs(run_id, epoch_row(1, acc - 0.1), epoch_row(2, acc))
    result = RunResult(config=TrainConfig(**TINY), final_test_acc=acc, best_test_acc=acc)
    with new_session() as session:
        assert lifecycle.finish(session, run_id, result, owner)


def fail(run_id: int) -> None:
    owner = record_epochs(run_id, epoch_row(1, 0.2))
    with new_session() as session:
        assert lifecycle.fail(session, run_id, "boom", owner)


def outcomes(answer: dict) -> dict[int, tuple[str, str | None, str | None]]:
    return {r["id"]: (r["outcome"], r["status"], r["reason"]) for r in answer["results"]}


def rows(session_query) -> list[tuple]:
    with new_session() as session:
        return [tuple(r) for r in session.execute(session_query).all()]


def test_tag_adds_to_each_runs_own_tags_in_one_request_and_untag_removes(api):
    ids = submit(api, 5)
    api.patch(f"/api/runs/{ids[0]}", json={"tags": ["keep"]})
    answer = api.post("/api/runs/bulk", json={"action": "tag", "ids": ids, "tags": [" Sweep-A "]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["requested"], body["done"], body["skipped"]) == (5, 5, 0)
    tags = {r["id"]: r["tags"] for r in body["results"]}
    assert tags[ids[0]] == ["keep", "sweep-a"] and tags[ids[1]] == ["sweep-a"]
    assert api.get(f"/api/runs/{ids[0]}").json()["tags"] == ["keep", "sweep-a"]
    assert api.get("/api/runs", params={"tag": "sweep-a"}).json()["total"] == 5

    again = api.post("/api/runs/bulk", json={"action": "tag", "ids": ids[:2], "tags": ["sweep-a"]})
    assert outcomes(again.json())[ids[1]] == ("skipped", "queued", "already tagged")

    untag = api.post("/api/runs/bulk", json={"action": "untag", "ids": ids, "tags": ["keep"]})
    assert untag.json()["done"] == 1
    assert outcomes(untag.json())[ids[1]] == ("skipped", "queued", "not tagged")
    assert api.get(f"/api/runs/{ids[0]}").json()["tags"] == ["sweep-a"]


def test_cancel_goes_through_each_run_as_the_single_cancel_does(api):
    queued, running, done = submit(api, 3)
    record_epochs(running, epoch_row(1, 0.4))
    succeed(done, 0.9)
    ids = [queued, running, done, 999]
    answer = api.post("/api/runs/bulk", json={"action": "cancel", "ids": ids})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert outcomes(body) == {
        queued: ("done", "cancelled", None),
        running: ("done", "running", None),  # stops between batches, as a single cancel
        done: ("skipped", "succeeded", "already finished (succeeded)"),
        999: ("skipped", None, "not found"),
    }
    assert (body["requested"], body["done"], body["skipped"]) == (4, 2, 2)
    assert rows(select(Run.cancel_requested).where(Run.id == running)) == [(True,)]
    # the single endpoint agrees on the finished run
    assert api.post(f"/api/runs/{done}/cancel").status_code == 409


def test_retry_requeues_finished_runs_and_sends_them_together(api, monkeypatch):
    sent: list[list[int]] = []
    monkeypatch.setattr(bulk, "ring", lambda ids: sent.append(list(ids)) or True)
    failed, cancelled, queued, running, succeeded = submit(api, 5)
    fail(failed)
    api.post(f"/api/runs/{cancelled}/cancel")
    record_epochs(running, epoch_row(1, 0.4))
    succeed(succeeded, 0.9)
    ids = [failed, cancelled, queued, running, succeeded]
    body = api.post("/api/runs/bulk", json={"action": "retry", "ids": ids}).json()
    assert outcomes(body) == {
        failed: ("done", "queued", None),
        cancelled: ("done", "queued", None),
        queued: ("skipped", "queued", "already queued"),
        running: ("skipped", "running", "running; not retryable until it ends"),
        succeeded: (
            "skipped",
            "succeeded",
            "succeeded; only failed, cancelled, lost runs are retried",
        ),
    }
    assert sent == [[failed, cancelled]]


def test_delete_removes_finished_runs_with_metrics_and_checkpoints_and_skips_active_ones(api):
    finished, queued = submit(api, 2)
    succeed(finished, 0.8)
    folder = open_store(get_settings()).pull(finished)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.pt").write_bytes(b"weights")
    body = api.post("/api/runs/bulk", json={"action": "delete", "ids": [finished, queued]}).json()
    assert outcomes(body) == {
        finished: ("done", None, None),
        queued: ("skipped", "queued", "queued; cancel it first"),
    }
    assert api.get(f"/api/runs/{finished}").status_code == 404
    assert rows(select(func.count(Metric.id)).where(Metric.run_id == finished)) == [(0,)]
    assert not folder.exists()
    assert count_runs() == 1


def test_a_filter_picks_the_runs_as_the_list_does(api):
    relu = submit(api, 3, activation="relu")
    tanh = submit(api, 2, activation="tanh")
    api.post(f"/api/runs/{relu[0]}/cancel")
    body = api.post(
        "/api/runs/bulk",
        json={"action": "cancel", "filter": {"activation": "relu", "status": ["queued"]}},
    ).json()
    assert [r["id"] for r in body["results"]] == relu[1:]
    assert body["done"] == 2
    listed = api.get("/api/runs", params={"status": "queued"}).json()["items"]
    assert {r["id"] for r in listed} == set(tanh)
    # {} is every run, here 5: tagging all of them
    every = api.post("/api/runs/bulk", json={"action": "tag", "filter": {}, "tags": ["all"]})
    assert every.json()["requested"] == 5 and every.json()["done"] == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "cancel", "ids": []}, "ids"),
        ({"action": "cancel", "ids": list(range(1, bulk.MAX_BULK + 2))}, "ids"),
        ({"action": "cancel", "ids": [0]}, 0),
        ({"action": "cancel", "ids": ["1"]}, 0),
        ({"action": "cancel"}, "ids"),
        ({"action": "cancel", "ids": [1], "filter": {}}, "ids"),
        ({"action": "delete", "filter": {"stauts": ["failed"]}}, "stauts"),
        ({"action": "delete", "filter": {"status": "failed"}}, "status"),
        ({"action": "delete", "filter": {"seed": "1"}}, "seed"),
        ({"action": "tag", "ids": [1]}, "tags"),
        ({"action": "tag", "ids": [1], "tags": ["two words"]}, "tags"),
        ({"action": "cancel", "ids": [1], "tags": ["x"]}, "tags"),
        ({"action": "cancel", "ids": [1], "force": True}, "force"),
    ],
)
def test_bad_requests_are_422_naming_the_field_and_change_nothing(api, body, field):
    ids = submit(api, 2)
    before = rows(select(Run.id, Run.status, Run.tags).order_by(Run.id))
    response = api.post("/api/runs/bulk", json=body)
    assert response.status_code == 422, response.text
    assert any(err["loc"][-1] == field for err in response.json()["detail"]), response.text
    assert rows(select(Run.id, Run.status, Run.tags).order_by(Run.id)) == before
    assert len(ids) == 2


def test_a_filter_matching_more_than_the_cap_is_refused(api, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_BULK", 2)
    submit(api, 3)
    response = api.post("/api/runs/bulk", json={"action": "cancel", "filter": {}})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "filter"] and "matches 3 runs; at most 2" in error["msg"]
    assert api.get("/api/runs", params={"status": "queued"}).json()["total"] == 3


# ------------------------------------------------------------------ CSV export


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_csv_without_parameters_is_every_run_and_every_field_as_before(api):
    ids = submit(api, 2) + submit(api, 1, activation="tanh")
    table = read_csv(api.get("/api/runs.csv"))
    fields = list(TrainConfig.model_fields)
    assert table[0] == ["run_id", "sweep_id", "name", "tags", *fields, "status", "epochs_done",
                        "final_test_acc", "best_test_acc", "best_epoch", "train_seconds",
                        "note"]  # fmt: skip
    assert [int(row[0]) for row in table[1:]] == ids


def test_csv_follows_the_filters_sort_and_chosen_columns(api):
    relu = submit(api, 3, activation="relu")
    tanh = submit(api, 2, activation="tanh")
    succeed(relu[0], 0.7)
    succeed(relu[1], 0.9)
    api.patch(f"/api/runs/{relu[1]}", json={"tags": ["best", "kept"]})
    columns = "run_id,final_test_acc,tags,width,status,epochs_done,epochs_total,images_per_second"
    params = {"activation": "relu", "sort": "-final_test_acc", "columns": columns}
    table = read_csv(api.get("/api/runs.csv", params=params))
    assert table[0] == columns.split(",")
    assert [row[0] for row in table[1:]] == [str(relu[1]), str(relu[0]), str(relu[2])]
    assert table[1] == [str(relu[1]), "0.9", "best kept", "4", "succeeded", "2", "2", "100.0"]
    assert table[3][1] == "" and table[3][4] == "queued"
    # the list's own filters: status may repeat, a search word, a tag
    both = {"status": ["queued", "succeeded"], "columns": "run_id"}
    assert len(read_csv(api.get("/api/runs.csv", params=both))) == 1 + 5
    by_tag = read_csv(api.get("/api/runs.csv", params={"tag": "best", "columns": "run_id"}))
    assert by_tag[1:] == [[str(relu[1])]]
    by_q = read_csv(api.get("/api/runs.csv", params={"q": "tanh", "columns": "run_id"}))
    assert [r[0] for r in by_q[1:]] == [str(i) for i in tanh]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"columns": "run_id,colour"}, "columns", "unknown column 'colour'"),
        ({"columns": " , "}, "columns", "at least one column"),
        ({"sort": "colour"}, "sort", ""),
        ({"status": "done"}, "status", ""),
        ({"sweep_id": "0"}, "sweep_id", ""),
    ],
)
def test_bad_csv_parameters_are_422_naming_them(api, params, field, words):
    response = api.get("/api/runs.csv", params=params)
    assert response.status_code == 422, response.text
    named = [e for e in response.json()["detail"] if field in e["loc"]]
    assert named and words in named[0]["msg"], response.text
