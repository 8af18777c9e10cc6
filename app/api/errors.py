"""Answers for errors no route handles: 503 while the database cannot answer (locked past
API_DB_TIMEOUT, unreachable, restarting), a JSON 500 for anything else.

A client can tell the two apart: a 503 with Retry-After is worth retrying as it is, a 500
is a bug. Both are JSON like every other answer of the API.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse

from core.outages import unavailable_reason

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


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
