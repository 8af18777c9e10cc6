"""Login for the pages when API_TOKEN is set: the token once, then an HttpOnly cookie that
names a server-side session, which logout revokes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import SessionDep, SettingsDep
from app.security import AUTH_COOKIE
from app.sessions import SESSION_LIFETIME, open_session, revoke_session, token_ok

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//evil.example" and "https://..." go home instead.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, settings: SettingsDep, next: str = "/", error: str = ""):
    from app.pages import render_page

    return render_page(
        request,
        "login.html",
        "login",
        next=_safe_next(next),
        error=error[:200],
        token_required=bool(settings.api_token),
    )


@router.post("/login")
def login(
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = _safe_next(next)
    if not settings.api_token:
        return RedirectResponse(target, status_code=303)
    if not token_ok(token, settings.api_token):
        query = urlencode({"error": "wrong token", "next": target})
        return RedirectResponse(f"/login?{query}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        AUTH_COOKIE,
        open_session(session, settings.api_token),
        httponly=True,
        samesite="strict",
        max_age=int(SESSION_LIFETIME.total_seconds()),
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    # Revoked on the server: a copy of the cookie stops working too.
    value = request.cookies.get(AUTH_COOKIE)
    if value:
        revoke_session(session, value)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(AUTH_COOKIE, httponly=True, samesite="strict")
    return response
