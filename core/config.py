"""One settings object, read once from the environment, with defaults that work on a laptop."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def is_url(location: str | None) -> bool:
    """s3://bucket/prefix and other fsspec URLs; file:// and plain paths are local folders."""
    return (
        bool(location)
        and bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", location))
        and (not location.startswith("file://"))
    )


@lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    """The absolute form of a configured folder, worked out once per process: every request
    opens a session through it, and resolve() is a system call per path component."""
    return path.expanduser().resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    home: Path = Field(Path("~/.resnet-lab"), validation_alias=_env("RESNET_LAB_HOME"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    broker_url: str | None = Field(None, validation_alias=_env("BROKER_URL"))
    data_dir: Path | None = Field(None, validation_alias=_env("DATA_DIR"))
    # A folder, or an fsspec URL (s3://bucket/prefix) that workers on every host can read:
    # each host then trains on local copies in CACHE_DIR and publishes every checkpoint there.
    runs_dir: str | None = Field(None, validation_alias=_env("RUNS_DIR"))
    cache_dir: Path | None = Field(None, validation_alias=_env("CACHE_DIR"))
    # For S3-compatible servers other than AWS (MinIO, moto); credentials come from the
    # usual AWS_* variables or files, read by botocore itself.
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("S3_ENDPOINT_URL"))
    api_token: str | None = Field(None, validation_alias=_env("API_TOKEN"))

    # A grid larger than this is refused: 36 cells x 3 seeds fits many times over.
    max_sweep_runs: int = Field(1000, ge=1, validation_alias=_env("MAX_SWEEP_RUNS"))
    # A worker writes its heartbeat this often; a run silent for heartbeat_timeout is lost.
    heartbeat_interval: float = Field(5.0, gt=0, validation_alias=_env("HEARTBEAT_INTERVAL"))
    heartbeat_timeout: float = Field(30.0, gt=0, validation_alias=_env("HEARTBEAT_TIMEOUT"))
    reaper_interval: float = Field(10.0, gt=0, validation_alias=_env("REAPER_INTERVAL"))
    # A queued run whose message is older than this is sent again if the broker lost it.
    resend_after: float = Field(30.0, gt=0, validation_alias=_env("RESEND_AFTER"))
    # A worker not seen for this long is deleted from the workers table.
    worker_retention: float = Field(86400.0, gt=0, validation_alias=_env("WORKER_RETENTION"))
    # A run that crashed its worker this many times is not resumed automatically again.
    max_attempts: int = Field(10, ge=1, validation_alias=_env("MAX_ATTEMPTS"))
    # Run submissions allowed per client per minute (a sweep counts its runs).
    submit_rate_per_minute: int = Field(2000, ge=1, validation_alias=_env("SUBMIT_RATE_PER_MINUTE"))
    max_body_bytes: int = Field(1_000_000, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))
    # A running run whose heartbeat is fresh but that finished no batch for the larger of this
    # and 20 median batch times is failed as stalled, and its worker process replaced.
    stall_timeout: float = Field(600.0, gt=0, validation_alias=_env("STALL_TIMEOUT"))
    # Up to this many compatible queued runs train together in one packed network
    # (`resnet-lab worker --pack K` sets it for its worker processes).
    pack: int = Field(1, ge=1, le=64, validation_alias=_env("RESNET_LAB_PACK"))
    # A worker writes a run's checkpoint at most this often (and after its last epoch, and
    # when stopped between epochs): a 90 MB write after every 1-2 s GPU epoch costs more than
    # the epoch. After a crash, the epochs since the last checkpoint are trained again.
    checkpoint_seconds: float = Field(60.0, ge=0, validation_alias=_env("CHECKPOINT_SECONDS"))
    # `serve` and `worker` stop within this: warm shutdown first, then SIGKILL.
    stop_grace: float = Field(30.0, ge=0, validation_alias=_env("STOP_GRACE"))
    # Tests only, never in production: "hang:N", "abort:N[:always]" or "pause:N" makes a
    # real worker hang, abort or stop itself (worker.faults), to test stalls, native crashes
    # and takeovers with real processes.
    test_fault: str | None = Field(None, validation_alias=_env("RESNET_LAB_TEST_FAULT"))
    # The web app's wait for a locked SQLite database, a PostgreSQL row lock or connection,
    # before a request answers 503 with Retry-After; workers keep core.db's 30 s.
    api_db_timeout: float = Field(5.0, gt=0, le=600, validation_alias=_env("API_DB_TIMEOUT"))
    # A worker keeps training while the database is out of reach for up to this long, its
    # epoch rows kept in memory and written in order when it is back; past it, it stops.
    db_outage_grace: float = Field(120.0, gt=0, validation_alias=_env("DB_OUTAGE_GRACE"))
    # How often server-sent event streams look for new rows.
    events_poll_seconds: float = Field(0.25, gt=0, validation_alias=_env("EVENTS_POLL_SECONDS"))

    @property
    def home_dir(self) -> Path:
        return _resolved(self.home)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'resnet-lab.db'}"

    @property
    def resolved_broker_url(self) -> str:
        # Embedded default: Celery over a SQLite file, so one machine needs no Redis.
        return self.broker_url or f"sqla+sqlite:///{self.home_dir / 'broker.db'}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def resolved_data_dir(self) -> Path:
        return (self.data_dir or self.home_dir / "data").expanduser().resolve()

    @property
    def runs_remote(self) -> bool:
        return is_url(self.runs_dir)

    @property
    def resolved_runs_dir(self) -> Path:
        """The local RUNS_DIR folder (see core.store for a URL)."""
        if self.runs_remote:
            raise ValueError(f"RUNS_DIR is a URL, not a folder: {self.runs_dir}")
        if self.runs_dir is None:
            return self.home_dir / "runs"
        return Path(self.runs_dir.removeprefix("file://")).expanduser().resolve()

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.home_dir / "cache").expanduser().resolve()

    def ensure_dirs(self) -> None:
        paths = [self.home_dir, self.resolved_data_dir]
        if not self.runs_remote:
            paths.append(self.resolved_runs_dir)
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
