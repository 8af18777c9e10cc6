"""/api/sweeps over a real SQLite file: values compared as values, listings in few queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from core.db import Run, get_engine, new_session
from tests.app.test_api import count_runs
from tests.conftest import TINY


def finish(run_ids: list[int], accs: list[float]) -> None:
    with new_session() as session:
        for run_id, acc in zip(run_ids, accs):
            run = session.get(Run, run_id)
            run.status, run.final_test_acc = "succeeded", acc
        session.commit()


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block."""
    seen: list[str] = []
    engine = get_engine()

    def record(_conn, _cursor, statement, _params, _context, _many):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("spelling", ["0.00005", "5e-05", "5E-5", "0.000050"])
def test_baseline_is_matched_by_value_not_by_spelling(api, spelling):
    body = {"base": TINY, "grid": {"lr": [0.00005, 0.1]}, "seeds": [0, 1]}
    sweep = api.post("/api/sweeps", json=body).json()
    finish(sweep["run_ids"], [0.5, 0.52, 0.9, 0.91])
    response = api.get(f"/api/sweeps/{sweep['id']}", params={"baseline": f"lr:{spelling}"})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["baseline"] == {"lr": 5e-05}
    baseline = next(c for c in summary["cells"] if c["is_baseline"])
    assert baseline["key"] == {"lr": 5e-05} and baseline["n"] == 2


def test_stored_grid_holds_the_values_the_runs_were_validated_to(api):
    body = {"base": TINY, "grid": {"lr_ratio": ["02:1:1", " 5 : 4 : 1 "], "lr": [1]}}
    response = api.post("/api/sweeps", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["grid"] == {"lr_ratio": ["2:1:1", "5:4:1"], "lr": [1.0]}
    sweep_id = response.json()["id"]
    summary = api.get(f"/api/sweeps/{sweep_id}", params={"baseline": "lr_ratio:02:1:1,lr:1"})
    assert summary.status_code == 200, summary.text
    summary = summary.json()
    assert summary["grid"]["lr_ratio"] == ["2:1:1", "5:4:1"]
    # Every cell's key is a combination of the stored grid's values.
    assert [c["key"]["lr_ratio"] for c in summary["cells"]] == ["2:1:1", "5:4:1"]
    assert next(c for c in summary["cells"] if c["is_baseline"])["key"]["lr_ratio"] == "2:1:1"


def test_grid_values_that_validate_to_one_value_are_422_and_nothing_is_stored(api):
    body = {"base": TINY, "grid": {"lr_ratio": ["2:1:1", "02:1:1"]}}
    response = api.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "grid", "lr_ratio"]
    assert count_runs() == 0


@pytest.mark.parametrize("baseline", ["lr:0.2", "lr:abc", "activation:relu"])
def test_baseline_that_is_not_a_value_of_the_grid_is_422(api, baseline):
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": {"lr": [0.1]}}).json()
    response = api.get(f"/api/sweeps/{sweep['id']}", params={"baseline": baseline})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "baseline"]


def test_sweep_list_reads_a_constant_number_of_queries_without_full_run_rows(api):
    def list_sweeps() -> tuple[dict, list[str]]:
        with statements() as seen:
            response = api.get("/api/sweeps")
        assert response.status_code == 200, response.text
        return response.json(), seen

    first = api.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2, 4]}}).json()
    _, few = list_sweeps()
    for _ in range(4):
        api.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2, 4, 8]}})
    page, many = list_sweeps()
    assert len(many) == len(few)
    run_reads = [s for s in many if "FROM runs" in s]
    assert run_reads and not any("runs.result" in s or "runs.environment" in s for s in run_reads)
    # Configs (for the best cell) only of succeeded runs.
    assert all("runs.status =" in s for s in run_reads if "runs.config" in s)
    # The listing still says what the sweep holds.
    assert page["total"] == 5 and len(page["items"]) == 5
    oldest = page["items"][-1]
    assert oldest["run_ids"] == first["run_ids"]
    assert oldest["total_runs"] == 2 and oldest["counts"]["queued"] == 2
    with new_session() as session:
        ids = session.scalars(select(Run.id).where(Run.sweep_id == first["id"])).all()
    assert sorted(ids) == oldest["run_ids"]


def test_a_summary_is_worked_out_again_only_when_one_of_its_runs_changes(api, monkeypatch):
    import app.sweep_summary

    calls = []
    real = app.sweep_summary.summarize
    monkeypatch.setattr(app.sweep_summary, "summarize", lambda *a: calls.append(a) or real(*a))
    body = {"base": TINY, "grid": {"activation": ["relu", "tanh"]}, "seeds": [0, 1]}
    sweep = api.post("/api/sweeps", json=body).json()
    url, cells = f"/api/sweeps/{sweep['id']}", f"/api/sweeps/{sweep['id']}/cells"
    first = api.get(url).json()
    assert api.get(url).json() == first and first["run_ids"] == sweep["run_ids"]
    assert api.get(cells, params={"by": "activation"}).json()["cells"] == first["cells"]
    assert len(calls) == 1  # the cells over the grid's own factors are the same summary
    api.get(cells, params={"by": ""})
    assert len(calls) == 2  # other factors, another summary
    relu = [first["cells"][0]["run_ids"][0]]
    finish(relu, [0.75])
    after = api.get(url).json()
    assert len(calls) == 3
    assert after["cells"][0]["mean"] == 0.75 and after["counts"]["succeeded"] == 1
    assert api.get(url).json() == after and len(calls) == 3
