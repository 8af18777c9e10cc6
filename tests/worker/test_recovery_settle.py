"""The recovery loop takes no run over until the database has answered it, promptly, for a
whole HEARTBEAT_TIMEOUT: after a failed pass, and after a pass that waited for the write
lock (a paused SQLite writer held it: every heartbeat waited too)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from core import migrate
from core.outages import Settle

WINDOW = 30.0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    migrate.upgrade(url)
    engine = create_engine(url, connect_args={"timeout": 0.05})
    yield sessionmaker(engine)
    engine.dispose()


def test_ready_until_a_failure_then_again_a_whole_window_later(sessions):
    clock = Clock()
    settle = Settle(WINDOW, slow=1.0, clock=clock)
    with sessions() as session:
        assert settle.ready(session)
    settle.failed()
    clock.now += WINDOW - 1
    with sessions() as session:
        assert not settle.ready(session)
    clock.now += 1
    with sessions() as session:
        assert settle.ready(session)


def test_a_pass_that_waited_for_the_write_lock_counts_as_a_failure(sessions):
    clock = Clock()
    settle = Settle(WINDOW, slow=1.0, clock=clock)

    class Waiting:
        """A session whose first statement waits 5 s for the lock, then gets it."""

        def execute(self, statement):
            clock.now += 5.0

    assert not settle.ready(Waiting())
    clock.now += WINDOW
    with sessions() as session:
        assert settle.ready(session)


def test_ready_holds_the_write_lock_for_the_pass(sessions, tmp_path):
    settle = Settle(WINDOW, slow=1.0)
    with sessions() as session:
        assert settle.ready(session)
        other = sqlite3.connect(tmp_path / "lab.db", timeout=0.05)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_a_locked_database_fails_the_pass(sessions, tmp_path):
    holder = sqlite3.connect(tmp_path / "lab.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with sessions() as session, pytest.raises(OperationalError, match="locked"):
            Settle(WINDOW, slow=1.0).ready(session)
    finally:
        holder.rollback()
        holder.close()
