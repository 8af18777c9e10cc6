"""The login state in the pages' header under API_TOKEN: what it says before a login, after
one, after logging out, and once the session ended elsewhere; none of it without a token."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from app.security import AUTH_COOKIE
from app.sessions import login_state
from core.config import get_settings
from core.db import LoginSession, new_session

TOKEN = "a token long enough for the header tests"


class _Header(HTMLParser):
    """The ids and text inside <div id="auth">, and its forms' actions."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.ids: list[str] = []
        self.text: list[str] = []
        self.actions: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "auth":
            self.depth = 1
        elif self.depth:
            self.depth += tag not in ("input", "br")
            self.ids += [a["id"]] if "id" in a else []
            self.actions += [a["action"]] if tag == "form" else []
            self.hrefs += [a["href"]] if tag == "a" else []

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and data.strip():
            self.text.append(data.strip())


def header(client, path: str = "/runs/new") -> _Header:
    response = client.get(path)
    assert response.status_code == 200
    parsed = _Header()
    parsed.feed(response.text)
    return parsed


def log_in(client) -> None:
    client.get("/login")
    response = client.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303 and client.cookies.get(AUTH_COOKIE)


@pytest.fixture
def locked(make_service):
    return make_service(None, API_TOKEN=TOKEN)


def test_the_header_says_signed_in_and_offers_a_logout_form(locked):
    client = locked.client
    out = header(client, "/compare?run_ids=1,2")
    assert out.text == ["not signed in", "Log in"]
    assert out.hrefs == ["/login?next=/compare%3Frun_ids%3D1%2C2"]  # back to the same view
    log_in(client)
    out = header(client)
    assert out.text == ["signed in", "Log out"]
    assert out.actions == ["/logout"] and "logout" in out.ids
    response = client.post("/logout", follow_redirects=False)
    assert response.status_code == 303
    assert header(client).text == ["not signed in", "Log in"]


def test_a_session_ended_elsewhere_reads_as_signed_out(locked):
    client = locked.client
    log_in(client)
    cookie = client.cookies.get(AUTH_COOKIE)
    other = client.__class__(client.app)  # another browser with a copy of the cookie
    other.post("/logout", headers={"Cookie": f"{AUTH_COOKIE}={cookie}"}, follow_redirects=False)
    assert client.cookies.get(AUTH_COOKIE) == cookie  # this browser still holds it
    assert header(client).text == ["not signed in", "Log in"]


def test_the_login_page_offers_no_second_login_link(locked):
    out = header(locked.client, "/login")
    assert out.text == [] and "login-link" not in out.ids


def test_without_a_token_the_header_has_no_login_state(make_service):
    client = make_service(None).client
    out = header(client)
    assert out.text == [] and out.ids == []


def test_showing_a_page_is_not_a_use_of_the_session(locked):
    client = locked.client
    log_in(client)
    with new_session() as session:
        before = session.scalar(select(LoginSession.last_used_at))
    assert login_state(client.cookies.get(AUTH_COOKIE), get_settings()) is True
    header(client)
    with new_session() as session:
        assert session.scalar(select(LoginSession.last_used_at)) == before
    assert login_state("not a session", get_settings()) is False
    assert login_state(None, get_settings()) is False
