"""Dependencies shared by the routers: a session per request, a run or sweep or 404."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app.jsonio import dumps, fast_json  # noqa: F401 (the routers' JSON, from one place)
from app.text import ASCII_ONLY, has_other_digits, printable
from core.config import Settings, get_settings
from core.db import Run, Sweep, new_session

# Both dependencies are coroutines: a plain function costs a hop to a worker thread and
# back per request (a sync generator two), which was most of a cheap call's time.


async def request_session() -> AsyncIterator[Session]:
    """A session per request. Opening one does no I/O (a connection is taken at its first
    query, in the endpoint's thread); closing it hands the connection back to the pool, a
    rollback on the wire, so that runs in a thread."""
    session = new_session()
    try:
        yield session
    finally:
        await anyio.to_thread.run_sync(session.close)


async def current_settings() -> Settings:
    return get_settings()


SessionDep = Annotated[Session, Depends(request_session)]
SettingsDep = Annotated[Settings, Depends(current_settings)]
RunId = Annotated[int, Path(ge=1, le=2**62)]
SweepId = Annotated[int, Path(ge=1, le=2**62)]


def get_run(session: SessionDep, run_id: RunId) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(404, f"run {run_id} not found")
    return run


def get_sweep(session: SessionDep, sweep_id: SweepId) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise HTTPException(404, f"sweep {sweep_id} not found")
    return sweep


RunDep = Annotated[Run, Depends(get_run)]
SweepDep = Annotated[Sweep, Depends(get_sweep)]


def _json_safe(value: Any, depth: int = 4) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, (dict, list, tuple)) and depth == 0:
        return "..."
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth - 1) for v in value]
    return value


# pydantic's own message for "٣" or "²" as a number says only that it is not one.
_NUMBER_ERRORS = {"int_parsing", "float_parsing"}


def _explained(error: dict[str, Any]) -> dict[str, Any]:
    given = error.get("input")
    if error.get("type") in _NUMBER_ERRORS and isinstance(given, str) and has_other_digits(given):
        return {**error, "msg": f"{error['msg']}: {ASCII_ONLY}"}
    return error


async def validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    """422 with the field and the reason, renderable whatever the input was.

    A validation error echoes the offending input, which FastAPI's own handler encodes as it
    is. Three inputs made that encoding fail with a 500: NaN and Infinity (not JSON, but
    Python's json reads them into floats), a body nested a few hundred levels deep
    (recursion limit), and a lone surrogate (`"\\ud800"`, not encodable as UTF-8). Here
    non-finite numbers are echoed as text, containers below four levels as "...", and lone
    surrogates as their escapes.
    """
    errors = [_explained(error) for error in exc.errors()]
    detail = jsonable_encoder(_json_safe(errors))
    return JSONResponse({"detail": detail}, status_code=422)
