"""Login sessions of the token mode: a random id in the cookie, its hash in the database,
live until logout, expiry or a new API_TOKEN; and the constant-time token check."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import LoginSession, engine_for, new_session, utcnow

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


def login_state(value: str | None, settings: Settings) -> bool | None:
    """What the pages' header says: None without API_TOKEN (nothing to log in to), else
    whether the cookie names a live session. Read only: showing a page is not a use."""
    if not settings.api_token:
        return None
    if not value:
        return False
    with new_session(engine_for(settings.resolved_database_url)) as session:
        found = session.scalar(
            select(LoginSession.id_hash).where(
                LoginSession.id_hash == _sha256(value),
                LoginSession.token_digest == _token_digest(settings.api_token),
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > utcnow(),
            )
        )
    return found is not None


def session_ok(value: str, settings: Settings) -> bool:
    with new_session(engine_for(settings.resolved_database_url)) as session:
        return use_session(session, value, settings.api_token or "")


def token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())
