"""JSON out, fast: the API's list and curve responses and the event streams."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def dumps(data: Any) -> bytes:
    """orjson: formats the thousands of floats of a curves response ~10x faster than json;
    NaN becomes null, datetimes ISO 8601."""
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


def fast_json(data: Any, status_code: int = 200) -> Response:
    """JSON without per-row model validation: list endpoints return thousands of rows."""
    return Response(dumps(data), status_code=status_code, media_type="application/json")
