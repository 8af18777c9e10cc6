"""Curves in columns (`?format=columns`) and the measured speed kept on each run: the same
numbers as the epoch rows, without reading or sending one object per epoch; and the runs a
page compares, listed in one call (`run_ids`)."""

from __future__ import annotations

import pytest

from core import lifecycle
from core.db import METRIC_FIELDS, Run, new_session
from tests.conftest import TINY, epoch_row, record_epochs
from trainer.results import EpochMetrics


def speed_row(epoch: int, ips: float, test_loss: float = 1.0) -> EpochMetrics:
    return epoch_row(epoch, 0.1 * epoch).model_copy(
        update={"images_per_second": ips, "test_loss": test_loss}
    )


def test_columns_hold_the_same_epochs_as_rows(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, speed_row(2, 80.0), speed_row(1, 120.0, float("nan")), speed_row(3, 100))
    rows = api.get(f"/api/runs/{run_id}/metrics").json()["epochs"]
    columns = api.get(f"/api/runs/{run_id}/metrics", params={"format": "columns"}).json()
    assert columns["run_id"] == run_id
    assert set(columns) == {"run_id", *METRIC_FIELDS}
    assert columns["epoch"] == [1, 2, 3]  # epoch order, whatever the order recorded
    for field in METRIC_FIELDS:
        assert columns[field] == [row[field] for row in rows], field
    assert columns["test_loss"][0] is None  # a diverged epoch: null, as in rows


def test_many_runs_in_columns_keep_the_order_asked_and_leave_out_unknown_ids(api):
    a, b, empty = (api.post("/api/runs", json=TINY).json()["id"] for _ in range(3))
    record_epochs(a, epoch_row(1, 0.2), epoch_row(2, 0.3))
    record_epochs(b, epoch_row(1, 0.6))
    ids = f"{b},999,{a},{empty}"
    rows = api.get("/api/metrics", params={"run_ids": ids}).json()["runs"]
    columns = api.get("/api/metrics", params={"run_ids": ids, "format": "columns"}).json()["runs"]
    assert [r["run_id"] for r in columns] == [r["run_id"] for r in rows] == [b, a, empty]
    for by_rows, by_columns in zip(rows, columns):
        for field in METRIC_FIELDS:
            assert by_columns[field] == [e[field] for e in by_rows["epochs"]]
    assert columns[2] == {"run_id": empty, **{f: [] for f in METRIC_FIELDS}}


def test_an_unknown_format_is_a_422(api):
    assert api.get("/api/metrics", params={"run_ids": "1", "format": "csv"}).status_code == 422
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    assert api.get(f"/api/runs/{run_id}/metrics", params={"format": "x"}).status_code == 422


def test_the_run_keeps_its_mean_speed_as_epochs_are_recorded_and_rewritten(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    assert api.get(f"/api/runs/{run_id}").json()["images_per_second"] is None
    owner = record_epochs(run_id, speed_row(1, 100.0), speed_row(2, 50.0))
    with new_session() as session:
        assert session.get(Run, run_id).images_per_second == pytest.approx(75.0)
        # a redelivered epoch rewrites its row
        assert lifecycle.record_epoch(session, run_id, speed_row(2, 150.0), owner)
    with new_session() as session:
        assert session.get(Run, run_id).images_per_second == pytest.approx(125.0)
    listed = {r["id"]: r for r in api.get("/api/runs").json()["items"]}
    assert listed[run_id]["images_per_second"] == pytest.approx(125.0)
    assert api.get(f"/api/runs/{run_id}").json()["images_per_second"] == pytest.approx(125.0)


def test_the_runs_list_keeps_only_the_run_ids_asked_for(api):
    ids = [api.post("/api/runs", json=TINY).json()["id"] for _ in range(4)]
    asked = f"{ids[2]},999,{ids[0]}"
    page = api.get("/api/runs", params={"run_ids": asked, "sort": "id"}).json()
    assert [r["id"] for r in page["items"]] == [ids[0], ids[2]] and page["total"] == 2
    both = api.get("/api/runs", params={"run_ids": asked, "q": f"#{ids[0]}"}).json()
    assert [r["id"] for r in both["items"]] == [ids[0]]  # with the other filters, not instead
    assert api.get("/api/runs", params={"run_ids": "1,x"}).status_code == 422


def metric_reads(statements: list[str]) -> int:
    return sum("FROM metrics" in s for s in statements)


@pytest.fixture
def statements():
    """The SQL the app runs while the test does: curves read from memory read no epochs."""
    from sqlalchemy import event

    from core.db import get_engine

    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(get_engine(), "before_cursor_execute", record)
    yield seen
    event.remove(get_engine(), "before_cursor_execute", record)


@pytest.mark.parametrize("form", ["rows", "columns"])
def test_curves_asked_again_are_not_read_again_until_the_run_changes(api, statements, form):
    a, b = (api.post("/api/runs", json=TINY).json()["id"] for _ in range(2))
    owner = record_epochs(a, epoch_row(1, 0.2), epoch_row(2, 0.3))
    params = {"run_ids": f"{a},{b}", "format": form}
    first = api.get("/api/metrics", params=params).json()
    one = api.get(f"/api/runs/{a}/metrics", params={"format": form}).json()
    assert one == first["runs"][0]

    statements.clear()
    assert api.get("/api/metrics", params=params).json() == first
    assert api.get(f"/api/runs/{a}/metrics", params={"format": form}).json() == one
    assert metric_reads(statements) == 0, statements

    def test_accs(body):
        run = body["runs"][0]
        return run["test_acc"] if form == "columns" else [e["test_acc"] for e in run["epochs"]]

    with new_session() as session:  # a new epoch, then a redelivered one rewritten
        assert lifecycle.record_epoch(session, a, epoch_row(3, 0.4), owner)
    assert test_accs(api.get("/api/metrics", params=params).json()) == [0.2, 0.3, 0.4]
    with new_session() as session:
        assert lifecycle.record_epoch(session, a, epoch_row(2, 0.9), owner)
    assert test_accs(api.get("/api/metrics", params=params).json()) == [0.2, 0.9, 0.4]
    single = api.get(f"/api/runs/{a}/metrics", params={"format": form}).json()
    assert test_accs({"runs": [single]}) == [0.2, 0.9, 0.4]
