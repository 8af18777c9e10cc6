"""While the database cannot answer, the API says so: 503, JSON, Retry-After, within
API_DB_TIMEOUT; and nothing is half-stored. Any other error is a JSON 500.

The lock is real: another connection holds a write transaction (SQLite's BEGIN IMMEDIATE,
PostgreSQL's LOCK TABLE), as a stuck worker or a long migration would.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.errors import unavailable_reason
from app.main import create_app
from tests.conftest import TINY, _configure_process, free_port, service_env
from tests.hardening.conftest import stored_rows

WAIT = 0.5  # API_DB_TIMEOUT in these tests


@contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Another client holding the database's write lock (on PostgreSQL: of the runs table,
    which plain reads may still read) until the block ends."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
        conn.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def service(database_url, make_service):
    return make_service(None, database_url, API_DB_TIMEOUT=str(WAIT))


def _assert_unavailable(response, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": f"database unavailable: {reason}"}
    assert int(response.headers["Retry-After"]) > 0


def test_a_locked_database_is_503_with_retry_after_and_nothing_stored(service, database_url):
    api = service.client
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    before = stored_rows()
    with write_lock(database_url):
        started = time.monotonic()
        edit = api.patch(f"/api/runs/{run_id}", json={"name": "renamed"})
        waited = time.monotonic() - started
        _assert_unavailable(edit, "database is locked")
        assert WAIT * 0.8 <= waited < WAIT + 4, waited  # API_DB_TIMEOUT, not 30 s
        _assert_unavailable(api.post("/api/runs", json=TINY), "database is locked")
        # Reads go on: SQLite's WAL and PostgreSQL's table lock both let them through.
        assert api.get(f"/api/runs/{run_id}").status_code == 200
    assert stored_rows() == before
    assert api.get(f"/api/runs/{run_id}").json()["name"] is None
    assert api.patch(f"/api/runs/{run_id}", json={"name": "renamed"}).status_code == 200


def test_a_locked_database_is_503_when_a_middleware_reads_it_too(database_url, make_service):
    # The API_TOKEN login check runs in a middleware, outside the routes' handlers.
    service = make_service(None, database_url, API_DB_TIMEOUT=str(WAIT), API_TOKEN="t" * 20)
    api = TestClient(service.client.app, raise_server_exceptions=False)
    login = api.post("/login", data={"token": "t" * 20}, follow_redirects=False)
    assert login.status_code == 303, login.text
    api.get("/")  # the CSRF cookie
    headers = {"X-CSRF-Token": api.cookies["rl_csrf"]}
    assert api.post("/api/runs", json=TINY, headers=headers).status_code == 201
    with write_lock(database_url):
        _assert_unavailable(api.post("/api/runs", json=TINY, headers=headers), "database is locked")


@pytest.fixture
def unreachable(tmp_path, monkeypatch) -> Iterator[TestClient]:
    """The web app over a PostgreSQL URL where no server listens."""
    from core.config import get_settings

    url = f"postgresql+psycopg://lab@127.0.0.1:{free_port()}/lab"
    _configure_process(monkeypatch, service_env(tmp_path, None, url, API_DB_TIMEOUT=str(WAIT)))
    with TestClient(create_app()) as client:
        yield client
    get_settings.cache_clear()


def test_an_unreachable_database_is_503_for_reads_and_writes(unreachable):
    _assert_unavailable(unreachable.get("/api/runs"), "cannot connect")
    _assert_unavailable(unreachable.get("/api/runs/1"), "cannot connect")
    _assert_unavailable(unreachable.post("/api/runs", json=TINY), "cannot connect")
    health = unreachable.get("/healthz")  # its own answer: which part is down
    assert health.status_code == 503 and health.json()["database"] is False


def test_an_unopenable_sqlite_file_is_503(tmp_path, monkeypatch):
    from core.config import get_settings

    (tmp_path / "file").write_text("")  # a file where the database's folder should be
    url = f"sqlite:///{tmp_path / 'file' / 'lab.db'}"
    _configure_process(monkeypatch, service_env(tmp_path, None, url))
    try:
        with TestClient(create_app()) as client:
            _assert_unavailable(client.get("/api/runs"), "cannot open the database file")
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))],
    ids=["bug", "integrity"],
)
def test_other_errors_are_a_json_500(make_service, monkeypatch, error):
    service = make_service(None)
    run_id = service.client.post("/api/runs", json=TINY).json()["id"]

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr("app.api.runs.curves_json", fail)
    api = TestClient(service.client.app, raise_server_exceptions=False)
    response = api.get(f"/api/runs/{run_id}/metrics")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "Retry-After" not in response.headers


class _PgError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OperationalError("x", {}, sqlite3.OperationalError("database is locked")),
         "database is locked"),
        (OperationalError("x", {}, sqlite3.OperationalError("unable to open database file")),
         "cannot open the database file"),
        (OperationalError("x", {}, _PgError("connection failed: Connection refused", "08006")),
         "cannot connect"),
        (OperationalError("x", {}, _PgError("canceling statement due to lock timeout", "55P03")),
         "database is locked"),
        (OperationalError("x", {}, _PgError("terminating connection", "57P01")),
         "connection lost"),
        (OperationalError("x", {}, _PgError("server closed the connection unexpectedly")),
         "connection lost"),
        (OperationalError("x", {}, Exception("anything"), connection_invalidated=True),
         "connection lost"),
        (PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
         "no database connection free"),
        (OperationalError("x", {}, sqlite3.OperationalError("no such table: runs")), None),
        (IntegrityError("x", {}, _PgError("duplicate key", "23505")), None),
        (RuntimeError("database is locked"), None),  # not from the database
    ],
)  # fmt: skip
def test_outages_are_told_from_other_database_errors(error, reason):
    assert unavailable_reason(error) == reason
