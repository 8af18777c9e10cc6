"""A run's log lines: kept with the run, bounded, served oldest first, followed by id."""

from __future__ import annotations

from datetime import timedelta

from core import run_logs
from core.db import new_session, utcnow
from tests.conftest import TINY


def test_log_lines_are_bounded_and_followed_by_id(make_service, monkeypatch):
    api = make_service(None).client
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    monkeypatch.setattr(run_logs, "LOG_LINES_KEPT", 5)
    start = utcnow()
    with new_session() as session:
        lines = [(start + timedelta(seconds=i), "info", f"line {i}") for i in range(8)]
        run_logs.add_log_lines(session, run_id, lines)
    page = api.get(f"/api/runs/{run_id}/logs").json()
    assert [line["message"] for line in page["lines"]] == [f"line {i}" for i in range(3, 8)]

    last = page["lines"][-1]["id"]
    assert api.get(f"/api/runs/{run_id}/logs", params={"after": last}).json()["lines"] == []
    with new_session() as session:
        run_logs.add_log_lines(session, run_id, [(utcnow(), "warning", "careful")])
    newer = api.get(f"/api/runs/{run_id}/logs", params={"after": last}).json()["lines"]
    assert [(line["level"], line["message"]) for line in newer] == [("warning", "careful")]
    assert api.get("/api/runs/999999/logs").status_code == 404
    assert api.get(f"/api/runs/{run_id}/logs", params={"limit": 0}).status_code == 422
