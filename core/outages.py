"""When the database cannot answer: what counts as an outage, and how long after one this
process holds back from declaring runs lost.

Shared by the web app (503 with Retry-After, its reaper), the workers' recovery loop and
their epoch writer (worker.epochs), so that all of them agree on what an outage is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import false, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from core.db import Run

log = logging.getLogger(__name__)

# PostgreSQL error classes (SQLSTATE) of a server that cannot answer now: connection
# exceptions (08), shutdown or restart (57P01-57P03), too many connections, lock timeout, a
# session ended while idle in a transaction.
_UNAVAILABLE_STATES = {"57P01": "connection lost", "57P02": "connection lost",
                       "57P03": "cannot connect", "53300": "cannot connect",
                       "55P03": "database is locked", "25P03": "connection lost"}  # fmt: skip

# The same, in the words of SQLite and of drivers that give no SQLSTATE.
_UNAVAILABLE_WORDS = (
    ("database is locked", "database is locked"),
    ("database table is locked", "database is locked"),
    ("lock timeout", "database is locked"),
    ("unable to open database file", "cannot open the database file"),
    ("could not connect", "cannot connect"),
    ("connection refused", "cannot connect"),
    ("connection failed", "cannot connect"),
    ("timeout expired", "cannot connect"),
    ("server closed the connection", "connection lost"),
    ("terminating connection", "connection lost"),
    ("connection is closed", "connection lost"),
    ("the database system is", "cannot connect"),  # starting up, shutting down, in recovery
    ("too many clients", "cannot connect"),
)

# A full disk (53100 on PostgreSQL): no outage to wait out.
_FULL_STATE = "53100"
_FULL_WORDS = ("database or disk is full", "no space left on device", "could not extend file")


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot answer now, in a few fixed words (never the server's own
    message: it may name hosts and users); None for an error that is not an outage."""
    if isinstance(exc, PoolTimeout):
        return "no database connection free"
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return "connection lost"
    state = getattr(exc.orig, "sqlstate", None) or ""
    if state.startswith("08"):
        return "cannot connect"
    if state in _UNAVAILABLE_STATES:
        return _UNAVAILABLE_STATES[state]
    text = str(exc.orig).lower()
    return next((reason for words, reason in _UNAVAILABLE_WORDS if words in text), None)


def disk_full(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or ""
    text = str(exc.orig).lower()
    return state == _FULL_STATE or any(words in text for words in _FULL_WORDS)


def is_outage(exc: BaseException) -> bool:
    """An error worth waiting out: the database is unreachable, restarting or locked (any
    OperationalError counts: the driver's own word that the database, not the query, failed)."""
    return not disk_full(exc) and (
        unavailable_reason(exc) is not None or isinstance(exc, OperationalError)
    )


class Settle:
    """Whether this process may declare runs lost (the web app's reaper) or take them over
    (the workers' recovery): only once the database has answered it, promptly, for a whole
    HEARTBEAT_TIMEOUT. A run whose heartbeat went stale while no one could write is still
    its worker's until that worker has had time to write again, so it carries on as the
    same attempt."""

    def __init__(
        self,
        window: float,
        slow: float,
        doing: str = "marked lost",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = window
        self.slow = slow  # a write lock that took longer than this: the database was held
        self.doing = doing
        self.clock = clock
        self.failed_at: float | None = None

    def failed(self) -> None:
        if self.failed_at is None:
            log.warning(
                "database unreachable or locked: no run is %s until it has answered for "
                "%.0f s (HEARTBEAT_TIMEOUT)", self.doing, self.window,
            )  # fmt: skip
        self.failed_at = self.clock()

    def waited(self, started: float) -> None:
        """A write begun at `started` is done: if it took longer than `slow`, the database
        was held until now, and so were heartbeats."""
        if self.clock() - started > self.slow:
            self.failed()

    def ready(self, session: Session) -> bool:
        """Takes the write lock of the runs table (SQLite's lock of the whole file), as a
        heartbeat would, and keeps it for the caller's transaction: no outage can start
        between this answer and what the caller does with it."""
        started = self.clock()
        session.execute(update(Run).where(false()).values(id=Run.id))
        self.waited(started)
        if self.failed_at is not None and self.clock() - self.failed_at < self.window:
            return False
        if self.failed_at is not None:
            log.warning("database answering for %.0f s: runs may be %s again",
                        self.window, self.doing)  # fmt: skip
        self.failed_at = None
        return True
