"""Exceptions of the client: each carries the API's own message (and field, for a 422)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class LabError(Exception):
    """Base of every error the client raises."""


class ServerUnreachable(LabError):
    """No answer from the server at all (refused, DNS, timeout), after the retries."""

    def __init__(self, url: str, reason: str = ""):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach ResNet Lab at {url}" + (f": {reason}" if reason else ""))


class WaitTimeout(LabError, TimeoutError):
    """lab.wait(..., timeout=...) ran out before every run was final."""


class APIError(LabError):
    """The server answered with an error status; `message` is its `detail`."""

    def __init__(self, status_code: int, message: str, method: str = "", path: str = ""):
        self.status_code = status_code
        self.message = message
        self.method = method
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class FieldError:
    """One entry of a 422: the field (dotted, without body/query) and why it was refused."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ValidationError(APIError):
    """422: `errors` lists each refused field; str() names them and the reasons."""

    def __init__(self, errors: list[FieldError], method: str = "", path: str = ""):
        self.errors = errors
        super().__init__(422, "; ".join(str(e) for e in errors) or "invalid input", method, path)

    @property
    def field(self) -> str:
        """The first refused field ("" when the server named none)."""
        return self.errors[0].field if self.errors else ""


class NotFound(APIError):
    """404: no such run, sweep or checkpoint."""


class Conflict(APIError):
    """409: the run's state forbids the action (cancel a finished run, delete a queued one)."""


class AuthError(APIError):
    """401 or 403: the server wants API_TOKEN (pass token=... or set API_TOKEN)."""


class Unavailable(APIError):
    """503 (database unavailable) or 429 (too many submissions): worth retrying later."""

    def __init__(self, status_code: int, message: str, retry_after: float | None, *args: str):
        self.retry_after = retry_after
        super().__init__(status_code, message, *args)


class ServerError(APIError):
    """500 and other 5xx: a bug on the server, not worth retrying as is."""


_PLACES = {"body", "query", "path", "header"}


def _field_errors(detail: Any) -> list[FieldError]:
    if isinstance(detail, str):
        return [FieldError("", detail)]
    out = []
    for item in detail if isinstance(detail, list) else []:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc") or []]
        if loc and loc[0] in _PLACES:
            loc = loc[1:]
        out.append(FieldError(".".join(loc), str(item.get("msg", ""))))
    return out


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def from_response(response: httpx.Response) -> APIError:
    """The exception for an error response (4xx or 5xx)."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text or response.reason_phrase
    method, path = response.request.method, response.request.url.path
    code = response.status_code
    if code == 422:
        return ValidationError(_field_errors(detail), method, path)
    message = detail if isinstance(detail, str) else "; ".join(map(str, _field_errors(detail)))
    message = message or f"HTTP {code}"
    if code in (429, 503):
        return Unavailable(code, message, _retry_after(response), method, path)
    kind = {404: NotFound, 409: Conflict, 401: AuthError, 403: AuthError}.get(code)
    if kind is None:
        kind = ServerError if code >= 500 else APIError
    return kind(code, message, method, path)
