"""The database: SQLAlchemy 2.0 models and the engine. The only module that defines tables."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, hands back aware UTC (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None else None


class RunStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"


# The one status vocabulary; pages read it from GET /api/statuses, never from a copy.
# ACTIVE: a worker holds the run or will take it. FINAL: nothing changes it again unless a
# person retries it. lost is neither: workers resume lost runs by themselves, so a lost run
# can still change and streams keep following it (CHANGING = everything not final).
ACTIVE = (RunStatus.queued, RunStatus.running)
FINAL = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
CHANGING = (RunStatus.queued, RunStatus.running, RunStatus.lost)
RETRYABLE = (RunStatus.failed, RunStatus.cancelled, RunStatus.lost)


class Base(DeclarativeBase):
    pass


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(50))
    base: Mapped[dict] = mapped_column(JSON)
    grid: Mapped[dict] = mapped_column(JSON)
    seeds: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    # An enum stored as its value in a VARCHAR (no database-specific type to migrate):
    # reads give RunStatus members, and a write of an unknown status is refused.
    status: Mapped[RunStatus] = mapped_column(
        Enum(
            RunStatus,
            native_enum=False,
            length=16,
            validate_strings=True,
            values_callable=lambda e: [m.value for m in e],
        ),
        index=True,
        default=RunStatus.queued,
    )
    config: Mapped[dict] = mapped_column(JSON)
    # The study's factors, copied out of config so that lists filter and sort on columns.
    dataset: Mapped[str] = mapped_column(String(32), index=True)
    activation: Mapped[str] = mapped_column(String(32), index=True)
    lr_ratio: Mapped[str] = mapped_column(String(32), index=True)
    augmentation: Mapped[str] = mapped_column(String(32), index=True)
    seed: Mapped[int] = mapped_column(Integer)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When its queue message was last sent: a queued run whose message the broker lost (a
    # restart without persistence) is sent again once this is old (core.doorbell).
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Progress, carried by heartbeats: a fresh heartbeat with no new batch means stuck.
    batches_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    batch_seconds: Mapped[float | None] = mapped_column(Float)  # median of recent batches
    # Bumped on every change, so event streams can ask "what changed since".
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    epochs_total: Mapped[int] = mapped_column(Integer)
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # Measured training speed: mean images/s over the recorded epochs, kept by
    # lifecycle.record_epoch so that lists show it without reading the epochs.
    images_per_second: Mapped[float | None] = mapped_column(Float)
    final_test_acc: Mapped[float | None] = mapped_column(Float, index=True)
    best_test_acc: Mapped[float | None] = mapped_column(Float, index=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict | None] = mapped_column(JSON)
    environment: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    checkpoint_path: Mapped[str | None] = mapped_column(String(500))
    # What a person says about the run (PATCH /api/runs/{id}); never read by the worker.
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    # Worker processes this run killed in native code since it was last submitted or retried,
    # and where the last one died ("epoch 1, batch 23 of 23"): a crash loop ends the run
    # (core.crashes).
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_crash_at: Mapped[str | None] = mapped_column(String(100))


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    lr: Mapped[float] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)  # null when it diverged
    train_acc: Mapped[float | None] = mapped_column(Float)  # null when it diverged
    test_loss: Mapped[float | None] = mapped_column(Float)  # null when it diverged
    test_acc: Mapped[float | None] = mapped_column(Float)  # null when it diverged
    seconds: Mapped[float] = mapped_column(Float)
    images_per_second: Mapped[float] = mapped_column(Float)


class RunLog(Base):
    """A worker's log lines about a run (the run page's Logs panel); the newest few hundred
    of each run are kept (core.run_logs.add_log_lines)."""

    __tablename__ = "run_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


class RunAttempt(Base):
    """One attempt at a run: which worker took it, when, and how it ended (the run page's
    attempt history). outcome is null while the attempt is under way."""

    __tablename__ = "run_attempts"
    __table_args__ = (UniqueConstraint("run_id", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # succeeded, failed, cancelled, crashed, lost, requeued, superseded
    outcome: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)


class WorkerSeen(Base):
    """Each worker process says it is alive here, every REAPER_INTERVAL, with what it runs
    on. Every column but the name may be null: rows from before revision 0003, and a device
    reading that failed, have none."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    device_kind: Mapped[str | None] = mapped_column(String(16))  # "cuda" or "cpu"
    device_name: Mapped[str | None] = mapped_column(String(200))
    # BigInteger: a GPU's memory in bytes overflows PostgreSQL's 32-bit INTEGER.
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    utilization: Mapped[float | None] = mapped_column(Float)  # percent, GPU or process CPU
    temperature_c: Mapped[float | None] = mapped_column(Float)
    cpu_threads: Mapped[int | None] = mapped_column(Integer)
    # The run this worker took last; it is training it only while the run is running with
    # this worker as its owner (the API checks that against the runs table).
    run_id: Mapped[int | None] = mapped_column(Integer)
    # Runs it trains together (`resnet-lab worker --pack K`); slots are the workers that
    # share a host and device.
    pack: Mapped[int | None] = mapped_column(Integer)


class LoginSession(Base):
    """A browser's login (POST /login with API_TOKEN). Its cookie holds a random id; only the
    id's SHA-256 is stored, so a copy of the database logs no one in. Logout revokes it, and
    `token_digest` ties it to the API_TOKEN it was opened with: a new token ends it."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


METRIC_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "images_per_second",
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A PostgreSQL session paused inside a transaction (its worker stopped, swapped out) would
# hold its row locks for as long as it sleeps: the server ends it after a minute, and a
# statement waits at most 30 s for a lock, then fails and its caller retries.
POSTGRES_SESSION = "-c idle_in_transaction_session_timeout=60000 -c lock_timeout=30000"


def _postgres_connect_args(url: str) -> dict[str, str]:
    # Options given in the URL come last, so they win over these defaults.
    given = make_url(url).query.get("options", "")
    return {"options": f"{POSTGRES_SESSION} {given}".strip()}


def _json_loads(text: str | bytes):
    """JSON columns read with orjson (a 50-run list decodes 150 of them: half its time with
    the json module); json.loads for the NaN and Infinity that json.dumps may have stored."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            json_deserializer=_json_loads,
        )
        # pysqlite opens a transaction only at the first write, so a write never upgrades a
        # stale read snapshot (the cause of "database is locked" in WAL); writers queue on
        # busy_timeout instead.
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        # pre_ping: a pooled connection the server closed (restart, outage) is replaced.
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args=_postgres_connect_args(url),
            json_deserializer=_json_loads,
        )
    return create_engine(url, pool_pre_ping=True, json_deserializer=_json_loads)


@lru_cache
def engine_for(url: str) -> Engine:
    # The tables come from the migrations (core/migrate.py), never from here.
    return make_engine(url)


def get_engine() -> Engine:
    from core.config import get_settings

    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.resolved_database_url)


@lru_cache
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def new_session(engine: Engine | None = None) -> Session:
    return _sessionmaker(engine or get_engine())()
