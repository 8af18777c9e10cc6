"""SQLite settings that the load figures (bench/load.py) depend on."""

from __future__ import annotations

from sqlalchemy import text

from core.db import make_engine


def test_app_database_connections_use_wal_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'core.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_embedded_broker_connections_use_wal_without_an_fsync_per_message(make_service):
    # kombu commits each message on its own: with a rollback journal and full sync a 108-run
    # grid cost 108 fsyncs (about 2 s on the development machine).
    make_service(None)
    from core.queue import make_celery

    options = make_celery().conf.broker_transport_options
    conn = options["creator"]()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        conn.close()
