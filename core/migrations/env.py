"""Alembic's entry point. `core.migrate` hands it an open connection (inside its lock and
transaction); the `alembic` command line, run from a checkout, connects to the database that
the settings name (DATABASE_URL, or the SQLite file in RESNET_LAB_HOME)."""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory

from core.db import Base, UTCDateTime

config = context.config


def next_revision_id(migration_context, _revision, directives) -> None:
    """`alembic revision` numbers revisions 0001, 0002, ... instead of random hex, so the
    order reads from the file names and two branches that both add 0002 clash visibly."""
    script = directives[0]
    head = ScriptDirectory.from_config(migration_context.config).get_current_head()
    script.rev_id = f"{int(head) + 1:04d}" if head else "0001"


def render_item(type_, obj, _autogen_context):
    """Revisions import nothing from the app: UTCDateTime is a plain DateTime in the database."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def configure(**options) -> None:
    context.configure(
        target_metadata=Base.metadata,
        compare_type=True,
        process_revision_directives=next_revision_id,
        render_item=render_item,
        **options,
    )


def run(connection) -> None:
    # SQLite alters most columns only by copying the table: autogenerate writes batch ops.
    configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def database_url() -> str:
    from core.config import get_settings

    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


if context.is_offline_mode():  # `alembic upgrade head --sql`: print the SQL, touch nothing
    configure(url=database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run(connection)
else:
    from core.migrate import locked, migration_engine

    engine = migration_engine(database_url())
    try:
        with locked(engine) as connection:
            run(connection)
    finally:
        engine.dispose()
