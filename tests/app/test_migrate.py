"""Migrations on a real SQLite file and a real PostgreSQL database (each test runs on both)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.engine import Connection

from core import lifecycle, migrate
from core.db import Base, Metric, Run, RunStatus, Sweep, WorkerSeen, make_engine, new_session
from tests.conftest import ROOT
from trainer.config import TrainConfig
from trainer.results import EpochMetrics

SCHEMA_9B4B2EE = Path(__file__).with_name("schema_9b4b2ee")
T0 = datetime(2026, 3, 1, 12, 30, 15, 123456)  # naive UTC, as the previous release stored it


def schema_differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_there_is_one_line_of_revisions_starting_at_the_baseline():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1, "two revisions share a parent: renumber one"
    assert script.get_base() == migrate.BASELINE


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(database_url):
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()
    assert schema_differences(database_url) == []


def create_9b4b2ee_schema(conn: Connection) -> None:
    sql = (SCHEMA_9B4B2EE / f"{conn.dialect.name}.sql").read_text()
    lines = [line for line in sql.splitlines() if not line.startswith("--")]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)


def fill_like_9b4b2ee(conn: Connection) -> None:
    """Rows as that release wrote them: ids from the database, naive UTC times, JSON,
    nulls where a run had not got that far, a diverged epoch with null losses."""
    tables = MetaData()
    tables.reflect(conn)
    sweeps, runs, metrics, workers = (
        tables.tables[n] for n in ("sweeps", "runs", "metrics", "workers")
    )
    conn.execute(
        sweeps.insert(),
        [
            {
                "name": "report grid",
                "preset": "report",
                "base": {"epochs": 30, "dataset": "cifar10"},
                "grid": {"activation": ["relu", "tanh"], "lr_ratio": ["2:1:1", "5:4:1"]},
                "seeds": [0, 1, 2],
                "created_at": T0,
            },
            {
                "name": "ad hoc ✓",
                "preset": None,
                "base": {},
                "grid": {},
                "seeds": [7],
                "created_at": T0,
            },
        ],
    )
    common = {
        "dataset": "digits",
        "lr_ratio": "2:1:1",
        "augmentation": "none",
        "queued_at": T0,
        "updated_at": T0,
        "epochs_total": 3,
    }
    conn.execute(
        runs.insert(),
        [
            {
                **common,
                "sweep_id": 1,
                "status": "succeeded",
                "config": {"activation": "relu", "epochs": 3, "seed": 0},
                "activation": "relu",
                "seed": 0,
                "attempts": 2,
                "cancel_requested": False,
                "worker": "host:101",
                "started_at": T0,
                "finished_at": T0.replace(minute=45),
                "heartbeat_at": T0.replace(minute=44),
                "epochs_done": 3,
                "train_seconds": 12.3456789012345,
                "final_test_acc": 0.912345678901234,
                "best_test_acc": 0.93,
                "best_epoch": 2,
                "result": {"confusion_matrix": [[5, 1], [0, 6]], "warnings": []},
                "environment": {"torch": "2.4.0", "device": "cpu"},
                "error": None,
                "checkpoint_path": "/data/runs/run-1",
            },
            {
                **common,
                "sweep_id": 1,
                "status": "running",
                "config": {"activation": "tanh", "epochs": 3, "seed": 1},
                "activation": "tanh",
                "seed": 1,
                "attempts": 1,
                "cancel_requested": True,
                "worker": "host:102",
                "started_at": T0,
                "finished_at": None,
                "heartbeat_at": T0,
                "epochs_done": 1,
                "train_seconds": 4.0,
                "final_test_acc": None,
                "best_test_acc": None,
                "best_epoch": None,
                "result": None,
                "environment": None,
                "error": None,
                "checkpoint_path": None,
            },
            {
                **common,
                "sweep_id": None,
                "status": "failed",
                "config": {"activation": "sigmoid", "epochs": 3, "seed": 7},
                "activation": "sigmoid",
                "seed": 7,
                "attempts": 1,
                "cancel_requested": False,
                "worker": None,
                "started_at": None,
                "finished_at": T0,
                "heartbeat_at": None,
                "epochs_done": 0,
                "train_seconds": 0.0,
                "final_test_acc": None,
                "best_test_acc": None,
                "best_epoch": None,
                "result": None,
                "environment": None,
                "error": "FileNotFoundError: cifar-10-python.tar.gz\n\ntraceback ...",
                "checkpoint_path": None,
            },
        ],
    )
    epoch = {"lr": 0.1, "seconds": 4.1, "images_per_second": 1234.5}
    conn.execute(
        metrics.insert(),
        [
            {
                **epoch,
                "run_id": 1,
                "epoch": 1,
                "train_loss": 2.1,
                "train_acc": 0.3,
                "test_loss": 1.9,
                "test_acc": 0.41,
            },
            {
                **epoch,
                "run_id": 1,
                "epoch": 2,
                "train_loss": 0.7,
                "train_acc": 0.8,
                "test_loss": 0.6,
                "test_acc": 0.93,
            },
            {
                **epoch,
                "run_id": 1,
                "epoch": 3,
                "train_loss": 0.5,
                "train_acc": 0.9,
                "test_loss": 0.5,
                "test_acc": 0.912345678901234,
            },
            {
                **epoch,
                "run_id": 2,
                "epoch": 1,
                "train_loss": None,
                "train_acc": None,
                "test_loss": None,
                "test_acc": None,
            },
        ],
    )
    conn.execute(
        workers.insert(),
        [{"name": "host:101", "last_seen": T0}, {"name": "host:102", "last_seen": T0}],
    )


def every_row(url: str, like: dict[str, list[dict]] | None = None) -> dict[str, list[dict]]:
    """Every row of every table, as dicts; `like` keeps only the tables and columns that an
    earlier snapshot had (later revisions add some)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = MetaData()
            tables.reflect(conn)
            rows = {
                name: [
                    dict(row._mapping)
                    for row in conn.execute(select(table).order_by(*table.primary_key))
                ]
                for name, table in tables.tables.items()
                if name != "alembic_version"
            }
    finally:
        engine.dispose()
    if like is None:
        return rows
    return {
        name: [{k: row[k] for k in (old[0] if old else {})} for row in rows[name]]
        for name, old in like.items()
    }


def test_a_database_of_the_release_before_migrations_upgrades_with_every_row_intact(database_url):
    engine = make_engine(database_url)  # the previous release's engine settings
    with engine.begin() as conn:
        create_9b4b2ee_schema(conn)
        fill_like_9b4b2ee(conn)
    engine.dispose()
    before = every_row(database_url)
    assert {name: len(rows) for name, rows in before.items()} == {
        "sweeps": 2,
        "runs": 3,
        "metrics": 4,
        "workers": 2,
    }

    migrate.upgrade(database_url)
    migrate.upgrade(database_url)  # a second start finds it at the newest revision

    assert migrate.current(database_url) == migrate.head()
    assert every_row(database_url, like=before) == before
    assert schema_differences(database_url) == []
    # Columns added since come with their defaults.
    assert {row["batches_done"] for row in every_row(database_url)["runs"]} == {0}
    # ... or are filled in from the old rows: each run's mean images/s over its epochs.
    speeds = {row["id"]: row["images_per_second"] for row in every_row(database_url)["runs"]}
    assert speeds == {1: 1234.5, 2: 1234.5, 3: None}

    # The app reads the old rows and writes new ones beside them.
    engine = make_engine(database_url)
    with new_session(engine) as session:
        run = session.get(Run, 1)
        assert run.status == RunStatus.succeeded and run.sweep_id == 1
        assert run.finished_at == T0.replace(minute=45, tzinfo=UTC)
        assert run.result["confusion_matrix"] == [[5, 1], [0, 6]]
        assert session.get(Sweep, 2).name == "ad hoc ✓"
        assert session.scalar(select(func.count(WorkerSeen.name))) == 2

        added = lifecycle.new_run(TrainConfig(dataset="digits", epochs=2))
        session.add(added)
        session.commit()
        assert added.id == 4  # the id sequence carried on
        metrics = dict(epoch=1, lr=0.1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5)
        owner = lifecycle.claim(session, added.id, "new-worker", heartbeat_timeout=30)
        assert lifecycle.record_epoch(
            session, added.id, EpochMetrics(**metrics, seconds=1.0, images_per_second=9.0), owner
        )
        assert session.scalar(select(func.count()).where(Metric.run_id == added.id)) == 1
        session.refresh(added)
        assert added.images_per_second == 9.0  # kept as epochs are recorded
    engine.dispose()


def test_processes_starting_together_upgrade_a_new_database_once(database_url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "RESNET_LAB_HOME": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    assert migrate.current(database_url) == migrate.head()
    assert schema_differences(database_url) == []
