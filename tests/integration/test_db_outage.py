"""A database outage of a few seconds costs no training: the worker trains on, keeps its
epoch rows in memory, writes them in order when the database is back, and the run carries
on as attempt 1; no one declares it lost meanwhile.

PostgreSQL: a server of the test's own, stopped (pg_ctl stop -m fast) after epoch 2 and
started again once the worker has kept epochs in memory and the run's heartbeat is stale.
The first heartbeat after the restart takes up to HEARTBEAT_INTERVAL (2 s here), while the
app's reaper and the workers' recovery loop look every 0.5 s: without their waiting for the
database to have answered for HEARTBEAT_TIMEOUT, they would declare the run lost first.

SQLite has no server to stop: its outage is a writer that holds the lock (paused inside a
transaction). The test holds it from another connection until the run's heartbeat is twice
HEARTBEAT_TIMEOUT old. Workers wait for SQLite's lock (busy_timeout, 30 s) rather than fail,
so here training waits too; a lock held past the busy timeout makes the worker keep its
epochs in memory as on PostgreSQL (tests/worker/test_epochs.py, with a 50 ms busy timeout).

Past DB_OUTAGE_GRACE the worker stops training and says why, and the run resumes from its
checkpoint once the database is back. A database whose disk is full is no outage to wait
out: training stops at once (a SQLite file on a real 8 MiB tmpfs, filled mid-run).
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import make_engine
from tests.conftest import TINY, free_port, wait_for

pytestmark = pytest.mark.integration

HEARTBEAT_TIMEOUT = 3.0  # service_env's
# PostgreSQL's leg: a heartbeat slower than the reaper, with room for it within the timeout.
PG_INTERVAL, PG_TIMEOUT = 2.0, 6.0
SLOW_HEARTBEAT = {
    "HEARTBEAT_INTERVAL": str(PG_INTERVAL),
    "HEARTBEAT_TIMEOUT": str(PG_TIMEOUT),
    "REAPER_INTERVAL": "0.5",
}
# 256 images at batch 64: about a second an epoch on one CPU thread.
RUN = {**TINY, "epochs": 24}
STOP_AFTER = 2


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(found[-1]) if found else None


class PostgresServer:
    """A throwaway PostgreSQL server on loopback, its files in a temporary folder. As root,
    its files and processes belong to the postgres user (PostgreSQL refuses to run as root),
    as in scripts/test.sh."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lab-pg-"))
        self.as_pg: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_pg = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_pg, str(self.bin / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def init(self) -> None:
        # Trust on loopback only, no fsync: a database that lives as long as the test.
        self._ctl("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -F"
        self._ctl("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "postgres.log"),
                  "-w", "-t", "60", "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._ctl("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """Requested before make_service: stopped after the service's workers are gone."""
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL is not installed: run make system-deps")
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_broker(redis_url) -> str:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def submit(service) -> int:
    response = service.client.post("/api/runs", json=RUN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def worker_log(service) -> str:
    return (service.home / "w0.log").read_text(errors="replace")


def kept_in_memory(service) -> int:
    """Epochs the worker has said it kept in memory."""
    return worker_log(service).count("kept in memory")


def heartbeat_age(service, run_id: int) -> float:
    at = datetime.fromisoformat(service.run(run_id)["heartbeat_at"].replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - at).total_seconds()


def assert_carried_on_as_attempt_one(service, run_id: int) -> None:
    run = service.wait_status(run_id, {"succeeded", "failed", "cancelled"}, timeout=180)
    assert run["status"] == "succeeded", f"{run['error']}\n{service.logs()}"
    assert run["attempts"] == 1, service.logs()
    assert [m["epoch"] for m in service.metrics(run_id)] == list(range(1, RUN["epochs"] + 1))
    # The attempt is closed just after the run is marked succeeded.
    wait_for(lambda: attempts(service, run_id) == [(1, "succeeded")], 10,
             f"attempt 1 to be the only one, succeeded: {attempts(service, run_id)}")  # fmt: skip


def attempts(service, run_id: int) -> list[tuple[int, str | None]]:
    history = service.client.get(f"/api/runs/{run_id}/attempts").json()["attempts"]
    return [(a["attempt"], a["outcome"]) for a in history]


def session_limits(url: str) -> tuple[str, str]:
    """How long a worker's PostgreSQL session may idle in a transaction and wait for a lock."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            idle = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
            return idle, conn.execute(text("SHOW lock_timeout")).scalar()
    finally:
        engine.dispose()


def test_postgresql_stopped_mid_run_costs_no_training(
    postgres_server, make_service, fresh_broker, caplog
):
    caplog.set_level(logging.WARNING, logger="app.reaper")
    assert session_limits(postgres_server.url) == ("1min", "30s")
    service = make_service(fresh_broker, postgres_server.url, **SLOW_HEARTBEAT)
    run_id = submit(service)
    service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= STOP_AFTER, 180,
             f"epoch {STOP_AFTER} ({service.logs()})")  # fmt: skip

    postgres_server.stop("fast")  # the API is down too: no call to it until the restart
    stopped = time.monotonic()
    # Training goes on meanwhile; the run's last heartbeat was at most one interval before
    # the stop, so it is stale once the server has been down for the timeout and that.
    stale = lambda: time.monotonic() - stopped > PG_TIMEOUT + PG_INTERVAL  # noqa: E731
    try:
        wait_for(lambda: kept_in_memory(service) >= 3 and stale(), 120,
                 f"epochs kept in memory ({service.logs()})")  # fmt: skip
    finally:
        postgres_server.start()

    assert_carried_on_as_attempt_one(service, run_id)
    log = worker_log(service)
    assert "kept in memory, retrying for up to 120 s (DB_OUTAGE_GRACE)" in log
    assert "epoch rows written after the outage" in log
    # Both the workers' recovery loop and the app's reaper saw the outage and held back.
    assert "no run is taken over until it has answered" in log
    assert "no run is marked lost until it has answered" in caplog.text
    lines = [
        line["message"] for line in service.client.get(f"/api/runs/{run_id}/logs").json()["lines"]
    ]
    assert any("kept in memory" in line for line in lines), "the run's own log tells it"


def test_past_the_grace_the_worker_stops_and_the_run_resumes_once_the_database_is_back(
    postgres_server, make_service, fresh_broker
):
    epochs = 12
    service = make_service(fresh_broker, postgres_server.url, DB_OUTAGE_GRACE="2")
    run_id = service.client.post("/api/runs", json={**RUN, "epochs": epochs}).json()["id"]
    service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= STOP_AFTER, 180,
             f"epoch {STOP_AFTER} ({service.logs()})")  # fmt: skip

    postgres_server.stop("fast")
    try:
        wait_for(lambda: "'stopped'" in worker_log(service), 60,
                 f"the worker to give up ({service.logs()})")  # fmt: skip
    finally:
        postgres_server.start()
    said = (
        "the database was unreachable for more than 2 s (DB_OUTAGE_GRACE); stopped training "
        f"run {run_id} after epoch "
    )
    assert said in worker_log(service)
    assert "it resumes from its last checkpoint when a worker can reach the database" in (
        worker_log(service)
    )

    run = service.wait_status(run_id, {"succeeded", "failed", "cancelled"}, timeout=180)
    assert run["status"] == "succeeded", f"{run['error']}\n{service.logs()}"
    assert run["attempts"] == 2 and run["result"]["resumed_from_epoch"] >= STOP_AFTER
    assert [m["epoch"] for m in service.metrics(run_id)] == list(range(1, epochs + 1))
    wait_for(lambda: attempts(service, run_id) == [(1, "lost"), (2, "succeeded")], 10,
             f"attempt 1 lost, attempt 2 succeeded: {attempts(service, run_id)}")  # fmt: skip


def test_sqlite_locked_by_a_paused_writer_costs_no_training(make_service, fresh_broker, caplog):
    caplog.set_level(logging.WARNING, logger="app.reaper")
    service = make_service(fresh_broker)  # SQLite in the service's home
    run_id = submit(service)
    service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= STOP_AFTER, 180,
             f"epoch {STOP_AFTER} ({service.logs()})")  # fmt: skip

    holder = sqlite3.connect(service.home / "resnet-lab.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a writer paused mid-transaction
    try:
        # Reads go on under WAL: the API answers while no one can write.
        wait_for(lambda: heartbeat_age(service, run_id) > 2 * HEARTBEAT_TIMEOUT, 60,
                 "the run's heartbeat to go stale")  # fmt: skip
        assert service.run(run_id)["status"] == "running"
    finally:
        holder.rollback()
        holder.close()

    assert_carried_on_as_attempt_one(service, run_id)
    # The lock held both back: a pass that waited for it counts as an outage.
    assert "no run is taken over until it has answered" in worker_log(service)
    assert "no run is marked lost until it has answered" in caplog.text


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A real 8 MiB file system (tmpfs), for a database whose disk fills up. Requested before
    make_service, so that it is unmounted after the service's processes are gone."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        # Lazy: this process's pooled connections may still hold the database file open.
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> Path:
    """Writes a file into `folder` until its file system has no byte left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as full:
        assert full.errno == errno.ENOSPC, full
    finally:
        os.close(fd)
    return filler


def test_a_full_database_disk_stops_training_at_once_and_says_why(
    small_disk, make_service, fresh_broker
):
    epochs = 6
    service = make_service(fresh_broker, f"sqlite:///{small_disk / 'lab.db'}")
    response = service.client.post("/api/runs", json={**RUN, "epochs": epochs})
    run_id = response.json()["id"]
    service.start_worker()
    wait_for(lambda: service.run(run_id)["epochs_done"] >= STOP_AFTER, 180,
             f"epoch {STOP_AFTER} ({service.logs()})")  # fmt: skip

    filler = fill(small_disk)
    wait_for(lambda: "'stopped'" in worker_log(service), 60,
             f"the worker to stop training ({service.logs()})")  # fmt: skip
    log = worker_log(service)
    said = f"the database's disk is full (database or disk is full); stopped training run {run_id}"
    assert said in log, log
    assert f"run {run_id} epoch " not in log.split(said)[1], "no epoch trained after it"
    # Reads still work: the run is still shown, and /healthz names the full disk.
    assert service.run(run_id)["status"] in ("running", "failed")
    health = service.client.get("/healthz").json()
    assert any("for the database" in warning for warning in health["warnings"]), health

    filler.unlink()
    run = service.wait_status(run_id, {"succeeded", "failed"}, timeout=180)
    if run["status"] == "failed":  # the one write marking it failed found room
        assert run["error"].startswith(said), run["error"]
    else:  # it could not be marked failed: resumed from its checkpoint once there is room
        assert run["attempts"] == 2, service.logs()
        assert [m["epoch"] for m in service.metrics(run_id)] == list(range(1, epochs + 1))


def test_healthz_reports_free_disk_space_and_warns_when_low(make_service, monkeypatch):
    service = make_service(None)
    body = service.client.get("/healthz").json()
    disk = body["disk"]
    assert disk["home_free_bytes"] > 0 and disk["database_free_bytes"] > 0
    assert disk["runs_free_bytes"] > 0
    assert disk["low"] == bool(body["warnings"])

    monkeypatch.setattr("app.api.health.LOW_FREE_BYTES", 1 << 62)  # every disk is "low"
    response = service.client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["ok"], "low space is a warning, not a 503"
    assert body["disk"]["low"] is True
    assert len(body["warnings"]) == 1, "one file system, one warning"
    assert body["warnings"][0].startswith("low disk space: ")
    assert "for the home folder, the database and the runs folder" in body["warnings"][0]
