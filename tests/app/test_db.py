"""The schema protects its data: the run status is an enum, not free text."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.exc import StatementError

from core.db import Run, RunStatus, new_session
from tests.conftest import TINY


def test_run_status_reads_as_the_enum_and_refuses_unknown_values(make_service):
    api = make_service(None).client
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    with new_session() as session:
        assert session.get(Run, run_id).status is RunStatus.queued
        with pytest.raises(StatementError, match="not among the defined enum values"):
            session.execute(update(Run).where(Run.id == run_id).values(status="finished"))
        session.rollback()
        assert session.get(Run, run_id).status is RunStatus.queued
