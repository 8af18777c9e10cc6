"""The schema belongs to Alembic: the revisions in core/migrations, applied by `upgrade(url)`.

`resnet-lab db upgrade` calls it, and so do `serve` and `worker` as they start, so several
processes may call it at once: the upgrade runs in one transaction under a lock (an
advisory lock on PostgreSQL, a file beside the database on SQLite), and a database already
at the newest revision is left alone without taking the lock. A database made by the
release before migrations (its tables, no alembic_version) has revision 0001's schema: it
is stamped 0001, then upgraded like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of release 9b4b2ee, made by create_all
# Any number, the same in every process that migrates: it names the PostgreSQL lock.
ADVISORY_LOCK = 0x5265734E6574  # "ResNet"


def alembic_config() -> Config:
    """Built in code, so an installed package needs no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migration_engine(url: str) -> Engine:
    """An engine for migrating only, unlike core.db's: on SQLite, foreign keys stay off (a
    revision that copies `runs` to alter it would otherwise cascade-delete every epoch) and
    pysqlite leaves transactions to us, so that `locked` can make DDL transactional too."""
    if not url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other migrating process shares, committed at the end."""
    with _file_lock(engine.url), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until the transaction ends; PostgreSQL's DDL is transactional.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        else:
            # Takes SQLite's write lock now: the revision read and the DDL see one state.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


def current(url: str) -> str | None:
    """The database's revision; None for an empty database or one made before Alembic."""
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest revision; safe to call from many processes."""
    config = alembic_config()
    newest = ScriptDirectory.from_config(config).get_current_head()
    _make_sqlite_folder(url)
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            if MigrationContext.configure(connection).get_current_revision() == newest:
                return
        with locked(engine) as connection:
            config.attributes["connection"] = connection
            if _made_before_migrations(connection):
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _made_before_migrations(connection: Connection) -> bool:
    tables = inspect(connection)
    return tables.has_table("runs") and not tables.has_table("alembic_version")


def _sqlite_path(url: str | URL) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _make_sqlite_folder(url: str) -> None:
    if path := _sqlite_path(url):
        path.parent.mkdir(parents=True, exist_ok=True)


def _file_lock(url: URL):
    """Beside the SQLite file. BEGIN IMMEDIATE alone would also serialise upgrades, but a
    waiter gives up after the busy timeout; a long upgrade must make the others wait."""
    path = _sqlite_path(url)
    return FileLock(f"{path}.migrate.lock") if path else nullcontext()
