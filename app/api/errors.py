"""Answers for errors no route handles: 503 while the database cannot answer (locked past
API_DB_TIMEOUT, unreachable, restarting), a JSON 500 for anything else.

A client can tell the two apart: a 503 with Retry-After is worth retrying as it is, a 500
is a bug. Both are JSON like every other answer of the API.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5

# PostgreSQL error classes (SQLSTATE) of a server that cannot answer now: connection
# exceptions (08), shutdown or restart (57P01-57P03), too many connections, lock timeout.
_UNAVAILABLE_STATES = {"57P01": "connection lost", "57P02": "connection lost",
                       "57P03": "cannot connect", "53300": "cannot connect",
                       "55P03": "database is locked"}  # fmt: skip

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


def unavailable(reason: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"database unavailable: {reason}"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """sqlalchemy's DBAPIError and pool timeout, raised by a route: 503 for an outage."""
    reason = unavailable_reason(exc)
    if reason is None:
        raise exc  # a bug, not an outage: server_error_handler answers, and it is logged
    log.warning("%s %s answered 503: database unavailable (%s)", request.method,
                request.url.path, reason)  # fmt: skip
    return unavailable(reason)


async def server_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unhandled, from a route or a middleware (the API_TOKEN session check reads
    the database too): JSON, and a 503 for an outage. Starlette logs the error after."""
    reason = unavailable_reason(exc)
    if reason is not None:
        return unavailable(reason)
    return JSONResponse({"detail": "internal server error"}, status_code=500)
