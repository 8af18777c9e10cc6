"""Fixtures for the hardening tests: an installation over a temporary home, no worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core.db import Metric, Run, Sweep, new_session


@pytest.fixture(autouse=True)
def fresh_submission_limiter() -> Iterator[None]:
    """The per-client submission window lives in the process (one app per process in
    production); every in-process client is "testclient", so each test starts and ends with
    an empty window and none of them eats another test's budget."""
    from app.rate_limit import limiter

    limiter._events.clear()
    yield
    limiter._events.clear()


def stored_rows() -> dict[str, int]:
    """How many runs, sweeps and metric rows the configured database holds."""
    with new_session() as session:
        return {
            "runs": session.scalar(select(func.count(Run.id))),
            "sweeps": session.scalar(select(func.count(Sweep.id))),
            "metrics": session.scalar(select(func.count(Metric.id))),
        }


NOTHING = {"runs": 0, "sweeps": 0, "metrics": 0}
