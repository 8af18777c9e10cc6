"""Shared fixtures: a temporary home (SQLite file), a real Redis, real worker processes, and
a fresh database per test on a real PostgreSQL server (when TEST_POSTGRES_URL names one)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def pytest_sessionstart(session) -> None:
    # Once per run, by the controller alone: with pytest-xdist (-n) its workers share the
    # folder, and one clearing it must not delete another's screenshots.
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)


def xdist_index() -> int:
    """0, 1, ... for pytest-xdist's workers gw0, gw1, ...; 0 without xdist."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


# Tiny, real training: scikit-learn's digits at width 4 takes a second or two per epoch.
TINY = {
    "dataset": "digits",
    "width": 4,
    "epochs": 2,
    "batch_size": 64,
    "train_limit": 256,
    "test_limit": 128,
    "augmentation": "none",
}


def record_epochs(run_id: int, *metrics, worker: str = "test-worker"):
    """Claims a queued run as a worker would and records epochs as its owner; the owner."""
    from core import lifecycle
    from core.db import new_session

    with new_session() as session:
        owner = lifecycle.claim(session, run_id, worker, heartbeat_timeout=3600)
        assert owner is not None, f"run {run_id} could not be claimed"
        for row in metrics:
            assert lifecycle.record_epoch(session, run_id, row, owner)
    return owner


def epoch_row(epoch: int, acc: float = 0.5):
    """A made-up finished epoch: 2 s, 100 images/s, accuracy `acc`."""
    from trainer.results import EpochMetrics

    return EpochMetrics(
        epoch=epoch,
        lr=0.1,
        train_loss=1.0,
        train_acc=acc,
        test_loss=1.0,
        test_acc=acc,
        seconds=2.0,
        images_per_second=100.0,
    )


def finished_grid(
    client,
    grid: dict[str, list],
    value_of: Callable[[dict, int], float],
    seeds=(0, 1, 2),
    fail: dict[int, str] | None = None,
    environment: dict[str, str] | None = None,
    base: dict | None = None,
) -> dict:
    """A grid of runs (`base`, TINY by default) posted through the API and finished by hand,
    no training: run i (in the sweep's order) records one 30 s epoch and succeeds with
    `value_of(config, i)` as its test accuracy (loss 1 - accuracy), or fails with the error
    `fail[i]`. Every run gets `environment` as a worker would record it. `grid` may be
    {"preset": name}. The sweep as POST answered it."""
    from core.db import Run, new_session
    from trainer.results import EpochMetrics

    body = {"base": TINY if base is None else base, "seeds": list(seeds)}
    body |= {"preset": grid["preset"]} if "preset" in grid else {"grid": grid}
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 201, response.text
    sweep = response.json()
    for i, run_id in enumerate(sweep["run_ids"]):
        with new_session() as session:
            config = dict(session.get(Run, run_id).config)
        acc = value_of(config, i)
        row = EpochMetrics(epoch=1, lr=0.1, train_loss=1.0 - acc, train_acc=acc,
                           test_loss=1.0 - acc, test_acc=acc, seconds=30.0,
                           images_per_second=100.0)  # fmt: skip
        record_epochs(run_id, row)
        with new_session() as session:
            run = session.get(Run, run_id)
            if fail and i in fail:
                run.status, run.error = "failed", fail[i]
            else:
                run.status, run.final_test_acc, run.best_test_acc = "succeeded", acc, acc
            if environment is not None:
                run.environment = dict(environment)
            session.commit()
    return sweep


def http_ok(url: str) -> bool:
    """True when url answers 200 (a server that is up); False while it is not reachable."""
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Polls `predicate` until it returns something truthy; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def start_serve(
    *options: str,
    env: dict[str, str],
    log: Path | None = None,
    command: list[str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 60,
) -> tuple[subprocess.Popen, str]:
    """`resnet-lab serve` on a free port in a session of its own (stop it with
    stop_process_group); returns the process and its base URL once /healthz answers 200, or
    fails at once, with its log, if it exits first. command: the `resnet-lab` to run
    (default: this checkout's, `python -m app.cli`)."""
    port = free_port()
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [*(command or [sys.executable, "-m", "app.cli"]), "serve", "--port", str(port), *options],
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if log is not None:
        out.close()  # the child holds its own copy
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            told = log.read_text(errors="replace")[-4000:] if log is not None else ""
            raise AssertionError(f"resnet-lab serve exited with {proc.returncode}:\n{told}")
        return http_ok(f"{base}/healthz")

    try:
        wait_for(ready, timeout, "resnet-lab serve to answer /healthz")
    except BaseException:
        stop_process_group(proc, grace=5)
        raise
    return proc, base


def stop_process_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to a process started with start_new_session, SIGKILL to its group if it is
    still there after `grace` seconds: a bounded stop that leaves nothing behind."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RedisServer:
    """A Redis process on loopback; persistent: every write on disk (appendfsync always),
    else nothing is (a restart comes back empty, as Redis's defaults can)."""

    def __init__(self, directory: Path, port: int | None = None, persistent: bool = True):
        self.port = port or free_port()
        self.directory = directory
        self.persistent = persistent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """REDIS_URL when the test script started one (.ci/run does), else our own server."""
    if os.environ.get("REDIS_URL"):
        # A database of its own per xdist worker: tests flush it and read its queue.
        yield os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{xdist_index()}"
        return
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed: run `make system-deps`")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


class S3Server:
    """moto's standalone S3-API server, a real process on a loopback port."""

    access_key = secret_key = "testing"  # moto accepts any credentials

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a service needs to reach it, besides RUNS_DIR."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 30, "the S3 server to answer")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"moto server exited with {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def create_bucket(self) -> str:
        import boto3

        name = f"lab-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        ).create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A new, empty bucket; this process's AWS_* variables point at the test server."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server.create_bucket()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the TEST_POSTGRES_URL server, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    server = make_url(os.environ["TEST_POSTGRES_URL"])
    name = f"lab_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: connections still pooled in this process must not keep it alive.
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


# For a test whose PostgreSQL leg would add nothing its SQLite leg does not test (the
# broker, the checkpoint files, processes and signals): it runs on SQLite alone. The SQL
# paths (upserts, compare-and-set claims, takeovers, sweeps' aggregates, streams) keep both.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """Each test that takes it runs twice: on a SQLite file, and on a fresh PostgreSQL
    database (scripts/test.sh starts the server and sets TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lab.db'}"
    elif not os.environ.get("TEST_POSTGRES_URL"):
        pytest.skip("TEST_POSTGRES_URL is unset: run the tests with scripts/test.sh")
    else:
        with postgres_database() as url:
            yield url


def service_env(
    home: Path, broker_url: str | None, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "DATABASE_URL")}
    env.update(
        RESNET_LAB_HOME=str(home),
        DATA_DIR=str(home / "data"),
        # Fast failure detection so fault tests finish in seconds.
        HEARTBEAT_INTERVAL="0.5",
        HEARTBEAT_TIMEOUT="3",
        REAPER_INTERVAL="1",
        EVENTS_POLL_SECONDS="0.1",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        STOP_GRACE="10",
        CHECKPOINT_SECONDS="0",  # every epoch: the fault tests kill between any two
    )
    if broker_url:
        env["BROKER_URL"] = broker_url
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


class Service:
    """A temporary installation: its env, an in-process API client, worker processes."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = env
        self.workers: list[subprocess.Popen] = []
        self.client = None

    def start_worker(self, name: str | None = None, *options: str, **env: str) -> subprocess.Popen:
        """`resnet-lab worker` with this node name, extra options (--slots, --pack) and extra
        variables for this worker only (e.g. its own CACHE_DIR, as if on another host)."""
        name = name or f"w{len(self.workers)}@test"
        log = open(self.home / f"{name.split('@')[0]}.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                "--name",
                name,
                "--loglevel",
                "info",
                *options,
            ],
            env={**self.env, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its Celery process, and wait until both are gone: a
        dying process still blocked on the broker could take the next message with it."""
        import psutil

        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"still alive after SIGKILL: {alive}"

    def run(self, run_id: int) -> dict:
        response = self.client.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, run_id: int, statuses: set[str], timeout: float = 120) -> dict:
        return wait_for(
            lambda: (r := self.run(run_id))["status"] in statuses and r,
            timeout,
            f"run {run_id} to reach {statuses} (log: {self.logs()})",
        )

    def metrics(self, run_id: int) -> list[dict]:
        return self.client.get(f"/api/runs/{run_id}/metrics").json()["epochs"]

    def logs(self) -> str:
        out = []
        for path in sorted(self.home.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def close(self) -> None:
        """Every worker and its children, killed at once: a graceful stop is what some tests
        test (test_sigterm_..., the grace-period tests), not what every teardown waits for."""
        live = [proc for proc in self.workers if proc.poll() is None]
        for proc in live:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in live:
            proc.wait(timeout=30)


def _configure_process(monkeypatch, env: dict[str, str]) -> None:
    """Points this process's settings at the service (the API runs in-process)."""
    from core.config import get_settings

    for key in ("BROKER_URL", "DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture
def make_service(tmp_path, monkeypatch) -> Iterator[Callable[..., Service]]:
    from fastapi.testclient import TestClient

    services: list[tuple[Service, TestClient]] = []

    def make(broker_url: str | None, database_url: str | None = None, **extra: str) -> Service:
        """database_url None: the default, a SQLite file in the service's home."""
        home = tmp_path / f"home{len(services)}"
        home.mkdir()
        env = service_env(home, broker_url, database_url, **extra)
        _configure_process(monkeypatch, env)
        from app.main import create_app
        from core import migrate
        from core.config import get_settings

        # What `resnet-lab serve` does before it starts the app.
        migrate.upgrade(get_settings().resolved_database_url)

        service = Service(home, env)
        client = TestClient(create_app())
        client.__enter__()
        service.client = client
        services.append((service, client))
        return service

    yield make
    for service, client in services:
        service.close()
        client.__exit__(None, None, None)
    from core.config import get_settings

    get_settings.cache_clear()


@pytest.fixture
def service(make_service, redis_url, database_url) -> Service:
    """Redis-brokered installation with no worker yet (tests start their own), once on
    SQLite and once on PostgreSQL."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return make_service(redis_url, database_url)
