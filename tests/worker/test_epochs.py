"""The epoch writer (worker/epochs.py) over a real SQLite file: rows kept in order while the
database is locked past its busy timeout, written when it is free again; training stopped
once the grace is over, and at once when the database's disk is full.

The lock is real (another connection's BEGIN IMMEDIATE, as a paused writer holds it), with a
busy timeout of 50 ms instead of the worker's 30 s; the clock is the test's, so backoff and
grace take no time.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from core import lifecycle, migrate
from core.db import Metric, Run
from tests.conftest import TINY, epoch_row, free_port
from trainer.config import TrainConfig
from worker.epochs import (
    FULL,
    UNREACHABLE,
    DatabaseFull,
    DatabaseUnreachable,
    EpochWriter,
    database_problem,
)

GRACE = 120.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Database:
    """A migrated SQLite file, its sessions (busy timeout 50 ms), and one run claimed."""

    def __init__(self, path):
        self.path = path
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        self.engine = create_engine(url, connect_args={"timeout": 0.05})
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.tries = 0
        with self.sessions() as session:
            run = lifecycle.new_run(TrainConfig(**TINY))
            session.add(run)
            session.commit()
            self.run_id = run.id
            self.owner = lifecycle.claim(session, run.id, "w:1", heartbeat_timeout=30)

    def session(self):
        self.tries += 1
        return self.sessions()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Another connection holds the write lock until the block ends."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()

    def epochs(self) -> list[int]:
        """The run's stored epochs, in the order they were written."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Metric.epoch).where(Metric.run_id == self.run_id).order_by(Metric.id)
                )
            )

    def epochs_done(self) -> int:
        with self.sessions() as session:
            return session.get(Run, self.run_id).epochs_done


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    database = Database(tmp_path / "lab.db")
    yield database
    database.engine.dispose()


def writer_for(db: Database, clock: Clock, lost: list[int] | None = None) -> EpochWriter:
    return EpochWriter(
        GRACE,
        runs=lambda: [db.run_id],
        lose=(lost if lost is not None else []).append,
        first_delay=1.0,
        max_delay=4.0,
        clock=clock,
        sessions=db.session,
    )


def test_rows_are_kept_in_order_through_a_lock_and_written_when_it_ends(db, caplog):
    caplog.set_level(logging.INFO, logger="worker.epochs")
    clock = Clock()
    writer = writer_for(db, clock)
    writer.add(db.run_id, db.owner, epoch_row(1))
    assert db.epochs() == [1] and writer.pending() == 0

    with db.locked():
        writer.add(db.run_id, db.owner, epoch_row(2))  # tried, refused: kept
        assert writer.pending() == 1
        assert (
            f"database unreachable: epoch 2 of run {db.run_id} kept in memory, retrying for up "
            "to 120 s (DB_OUTAGE_GRACE)" in caplog.text
        )
        tries = db.tries
        writer.add(db.run_id, db.owner, epoch_row(3))  # an outage is known: not even tried
        assert db.tries == tries and writer.pending() == 2

        writer.retry()  # backing off: no try yet
        assert db.tries == tries
        clock.advance(1.0)
        writer.retry()  # tried, still locked
        assert db.tries == tries + 1 and writer.pending() == 2
        writer.check()  # well within the grace: training goes on

    clock.advance(1.5)
    writer.retry()
    assert db.tries == tries + 1, "the backoff doubled to 2 s"
    clock.advance(0.5)
    writer.retry()
    assert writer.pending() == 0
    assert db.epochs() == [1, 2, 3] and db.epochs_done() == 3
    assert "database reachable again" in caplog.text

    writer.add(db.run_id, db.owner, epoch_row(4))  # the outage is over: written at once
    assert db.epochs() == [1, 2, 3, 4]


def test_past_the_grace_training_stops_and_says_why(db):
    clock = Clock()
    writer = writer_for(db, clock)
    writer.add(db.run_id, db.owner, epoch_row(1))
    with db.locked():
        writer.add(db.run_id, db.owner, epoch_row(2))
        clock.advance(GRACE - 1)
        writer.retry()
        writer.check()
        clock.advance(2)
        writer.retry()
        expected = (
            "the database was unreachable for more than 120 s (DB_OUTAGE_GRACE); stopped "
            f"training run {db.run_id} after epoch 2; it resumes from its last checkpoint when "
            "a worker can reach the database"
        )
        with pytest.raises(DatabaseUnreachable) as stopped:
            writer.check()
        assert str(stopped.value) == expected
        with pytest.raises(DatabaseUnreachable):
            writer.add(db.run_id, db.owner, epoch_row(3))
        with pytest.raises(DatabaseUnreachable):
            writer.drain(db.run_id)
    assert db.epochs() == [1]


def test_drain_writes_the_kept_rows_once_the_database_answers(db):
    clock = Clock()
    writer = writer_for(db, clock)
    with db.locked():
        writer.add(db.run_id, db.owner, epoch_row(1))
        writer.add(db.run_id, db.owner, epoch_row(2))
    clock.advance(1.0)
    writer.drain(db.run_id)
    assert db.epochs() == [1, 2] and writer.pending() == 0


def test_a_heartbeat_that_fails_starts_the_outage_clock_too(db):
    clock = Clock()
    writer = writer_for(db, clock)
    with db.locked(), db.sessions() as session:
        with pytest.raises(OperationalError) as locked:
            lifecycle.heartbeat(session, db.run_id, db.owner, lifecycle.Progress())
    assert writer.failed(locked.value)
    assert not writer.due()
    clock.advance(GRACE + 1)
    assert writer.failed(locked.value)
    with pytest.raises(DatabaseUnreachable, match="before finishing an epoch"):
        writer.check()


def full_disk_error(tmp_path) -> OperationalError:
    """SQLite's own error for a full disk: a database capped at its current size."""
    engine = create_engine(f"sqlite:///{tmp_path / 'small.db'}")
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA max_page_count=2"))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x BLOB)"))
        with pytest.raises(OperationalError) as full, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (zeroblob(100000))"))
        return full.value
    finally:
        engine.dispose()


class Failing:
    """Sessions that raise `error` as soon as they are used."""

    def __init__(self, error: Exception):
        self.error = error

    def __call__(self):
        return self

    def __enter__(self):
        raise self.error

    def __exit__(self, *exc):
        return False


def test_a_full_disk_stops_training_at_once(db, tmp_path):
    full = full_disk_error(tmp_path)
    assert "database or disk is full" in str(full)
    writer = EpochWriter(GRACE, runs=lambda: [db.run_id], sessions=Failing(full))
    with pytest.raises(DatabaseFull) as stopped:
        writer.add(db.run_id, db.owner, epoch_row(3))
    assert str(stopped.value).startswith(
        f"the database's disk is full (database or disk is full); stopped training run "
        f"{db.run_id} after epoch 3"
    )


def test_a_refused_row_means_the_run_was_taken_over(db):
    lost: list[int] = []
    writer = writer_for(db, Clock(), lost)
    with db.sessions() as session:  # silent for longer than the timeout: another claims it
        assert lifecycle.claim(session, db.run_id, "w:2", heartbeat_timeout=0) is not None
    writer.add(db.run_id, db.owner, epoch_row(1))
    assert lost == [db.run_id] and writer.pending() == 0 and db.epochs() == []


def test_what_counts_as_an_outage(db, tmp_path):
    with db.locked(), db.sessions() as session, pytest.raises(OperationalError) as locked:
        session.execute(text("UPDATE runs SET attempts = attempts"))
    assert database_problem(locked.value) == UNREACHABLE

    nowhere = create_engine(f"postgresql+psycopg://lab@127.0.0.1:{free_port()}/lab")
    with pytest.raises(OperationalError) as refused:
        nowhere.connect()
    assert database_problem(refused.value) == UNREACHABLE

    assert database_problem(full_disk_error(tmp_path)) == FULL
    assert database_problem(IntegrityError("INSERT", {}, Exception("UNIQUE"))) is None
    assert database_problem(ValueError("a bug")) is None
