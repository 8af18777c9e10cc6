"""The doors a dashboard that launches GPU jobs keeps closed.

- API_TOKEN: when set, every state-changing request needs `Authorization: Bearer <token>`
  or the login cookie (plus the CSRF header); the token is compared in constant time. The
  cookie holds a random session id that the database knows (by its hash) until logout,
  expiry or a new API_TOKEN.
- CSRF: cross-site state-changing requests are refused (Origin / Sec-Fetch-Site), and a
  cookie-authenticated one must echo the `rl_csrf` cookie in `X-CSRF-Token`.
- Bodies over MAX_BODY_BYTES get 413; run submissions past a per-client rate get 429.
- Every response carries security headers; scripts and data come only from this origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import timedelta

import anyio
from fastapi import HTTPException, Request
from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings, get_settings
from core.db import LoginSession, engine_for, new_session, utcnow

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


SESSION_LIFETIME = timedelta(days=30)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _token_digest(token: str) -> str:
    # Keyed by the token: sessions opened under another API_TOKEN do not match.
    return hmac.new(token.encode(), b"resnet-lab-session", hashlib.sha256).hexdigest()


def open_session(session: Session, token: str) -> str:
    """Records a new login and returns the random id for its cookie (stored only hashed).
    Sessions that can never be used again are cleared on the way."""
    now = utcnow()
    session.execute(
        delete(LoginSession).where(
            or_(LoginSession.expires_at <= now, LoginSession.revoked_at.is_not(None))
        )
    )
    value = secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            id_hash=_sha256(value),
            token_digest=_token_digest(token),
            created_at=now,
            last_used_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.commit()
    return value


def use_session(session: Session, value: str, token: str) -> bool:
    """Whether the cookie names a live session under this token; records the use. One
    compare-and-set UPDATE, so a logout racing a request is never half seen."""
    now = utcnow()
    result = session.execute(
        update(LoginSession)
        .where(
            LoginSession.id_hash == _sha256(value),
            LoginSession.token_digest == _token_digest(token),
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .values(last_used_at=now)
    )
    session.commit()
    return result.rowcount == 1


def revoke_session(session: Session, value: str) -> None:
    session.execute(
        update(LoginSession)
        .where(LoginSession.id_hash == _sha256(value), LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


def _session_ok(value: str, settings: Settings) -> bool:
    with new_session(engine_for(settings.resolved_database_url)) as session:
        return use_session(session, value, settings.api_token or "")


def token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


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
            if not session or not await anyio.to_thread.run_sync(_session_ok, session, settings):
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


class SubmissionLimiter:
    """Sliding one-minute window of runs submitted per client address."""

    def __init__(self) -> None:
        self._events: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, client: str, runs: int, per_minute: int) -> float | None:
        """Records the submission, or returns seconds to wait when it would exceed."""
        now = time.monotonic()
        with self._lock:
            window = self._events[client]
            while window and window[0][0] <= now - 60:
                window.popleft()
            used = sum(n for _, n in window)
            if used + runs > per_minute:
                return max(60 - (now - window[0][0]), 1.0) if window else 60.0
            window.append((now, runs))
            return None


limiter = SubmissionLimiter()


def limit_submissions(request: Request, runs: int, settings: Settings) -> None:
    client = request.client.host if request.client else "unknown"
    wait = limiter.take(client, runs, settings.submit_rate_per_minute)
    if wait is not None:
        raise HTTPException(
            429,
            f"too many runs submitted: at most {settings.submit_rate_per_minute} per minute",
            headers={"Retry-After": str(int(wait) + 1)},
        )
