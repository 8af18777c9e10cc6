"""The doors a dashboard that launches GPU jobs keeps closed.

- API_TOKEN: when set, every state-changing request needs `Authorization: Bearer <token>`
  or the login cookie (plus the CSRF header); the token is compared in constant time. The
  cookie holds a random session id that the database knows (by its hash) until logout,
  expiry or a new API_TOKEN.
- CSRF: cross-site state-changing requests are refused (Origin / Sec-Fetch-Site), and a
  cookie-authenticated one must echo the `rl_csrf` cookie in `X-CSRF-Token`.
- Bodies over MAX_BODY_BYTES get 413 (run submissions past a per-client rate get 429:
  app.rate_limit; login sessions: app.sessions).
- Every response carries security headers; scripts and data come only from this origin.
"""

from __future__ import annotations

import secrets

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sessions import session_ok, token_ok
from core.config import Settings, get_settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_COOKIE = "rl_csrf"
CSRF_HEADER = "x-csrf-token"
AUTH_COOKIE = "rl_session"
# Paths that must stay open for a browser to log in.
OPEN_PATHS = {"/login", "/logout"}

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "content-security-policy": (
        # No inline script anywhere: every page's code is a file under /static. Plotly
        # compiles some functions at run time ('unsafe-eval'); ReDoc runs its search index
        # in a worker made from a blob: URL.
        "default-src 'self'; script-src 'self' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; "
        "frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    ),
}


def bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _cookies(headers: Headers) -> dict[str, str]:
    out = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


def _same_origin(headers: Headers) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin in (None, "null"):
        return origin is None
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def _deny(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class SecurityMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware) so server-sent event streams pass untouched."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings or get_settings()
        headers = Headers(scope=scope)
        method = scope["method"]

        needs_csrf_cookie = CSRF_COOKIE not in _cookies(headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.decode().lower(): v for k, v in raw}
                for name, value in SECURITY_HEADERS.items():
                    if name not in present:
                        raw.append((name.encode(), value.encode()))
                if needs_csrf_cookie and present.get("content-type", b"").startswith(b"text/html"):
                    # Double-submit token: pages' scripts echo it in X-CSRF-Token.
                    cookie = f"{CSRF_COOKIE}={new_csrf_token()}; Path=/; SameSite=Strict"
                    raw.append((b"set-cookie", cookie.encode()))
                message["headers"] = raw
            await send(message)

        denial = await self._check(scope, headers, method, settings)
        if denial is not None:
            await denial(scope, receive, send_with_headers)
            return
        await self.app(scope, _limit_body(receive, settings.max_body_bytes), send_with_headers)

    async def _check(self, scope: Scope, headers: Headers, method: str, settings: Settings):
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _deny(400, "invalid Content-Length")
            if int(length) > settings.max_body_bytes:
                return _deny(413, f"request body over {settings.max_body_bytes} bytes")
        if method in SAFE_METHODS:
            return None
        token_given = bearer(headers)
        if token_given is not None:
            if settings.api_token and not token_ok(token_given, settings.api_token):
                return _deny(401, "invalid API token")
            return None  # scripts with a token are not subject to browser CSRF rules
        if not _same_origin(headers):
            return _deny(403, "cross-site request refused")
        cookies = _cookies(headers)
        if scope["path"] in OPEN_PATHS:
            return None
        if settings.api_token:
            session = cookies.get(AUTH_COOKIE)
            # The database lookup runs in a worker thread, off the event loop.
            if not session or not await anyio.to_thread.run_sync(session_ok, session, settings):
                return _deny(401, "authentication required: send Authorization: Bearer <token>")
        # Authenticated by cookie: the double-submit token is required, not only checked when
        # the rl_csrf cookie happens to be there. Without API_TOKEN, a client with no rl_csrf
        # cookie (curl, scripts) is only held to the same-origin check above.
        if settings.api_token or CSRF_COOKIE in cookies:
            expected = cookies.get(CSRF_COOKIE)
            if not expected or not token_ok(headers.get(CSRF_HEADER), expected):
                return _deny(403, "missing or wrong X-CSRF-Token header")
        return None


def _limit_body(receive: Receive, limit: int) -> Receive:
    """Counts a streamed body that came without Content-Length."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body over {limit} bytes")
        return message

    return wrapped
