"""The doors a dashboard that launches GPU jobs keeps closed.

Reads are open by design: anyone who can reach the server may look at runs, curves and
pages, with or without API_TOKEN; only state-changing requests (POST, DELETE) need the token.
`resnet-lab serve --host 0.0.0.0` without API_TOKEN exiting 2 is tested in
tests/integration/test_serve.py.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.exceptions import ContentDisallowed
from kombu.message import Message
from kombu.serialization import prepare_accept_content
from sqlalchemy import select, update

from app import security, sessions
from app.rate_limit import SubmissionLimiter
from app.security import AUTH_COOKIE, CSRF_COOKIE
from core.config import get_settings
from core.db import LoginSession, Run, new_session, utcnow
from core.paths import run_dir
from tests.conftest import TINY
from tests.hardening.conftest import stored_rows

TOKEN = "correct horse battery staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def locked(make_service):
    """An installation with API_TOKEN set (no worker: runs stay queued)."""
    return make_service(None, API_TOKEN=TOKEN)


def _writes(run_id: int, sweep_id: int) -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/api/runs", TINY),
        ("POST", "/api/sweeps", {"base": TINY, "grid": {"width": [2, 4]}}),
        ("POST", "/api/sweeps/estimate", {"preset": "report"}),
        ("POST", f"/api/runs/{run_id}/cancel", None),
        ("POST", f"/api/runs/{run_id}/retry", None),
        ("POST", f"/api/runs/{run_id}/cancel", None),
        ("DELETE", f"/api/runs/{run_id}", None),
        ("POST", f"/api/sweeps/{sweep_id}/cancel", None),
        ("POST", f"/api/sweeps/{sweep_id}/retry", None),
    ]


def _seed(client) -> tuple[int, int]:
    run = client.post("/api/runs", json=TINY, headers=BEARER)
    sweep = client.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2]}}, headers=BEARER)
    assert run.status_code == sweep.status_code == 201
    return run.json()["id"], sweep.json()["id"]


# ------------------------------------------------------------------ API_TOKEN


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
        {"Cookie": f"{AUTH_COOKIE}={TOKEN}"},  # the cookie holds a session id, not the token
    ],
    ids=["none", "wrong", "prefix", "longer", "basic", "no-scheme", "empty", "raw-cookie"],
)
def test_state_changing_requests_without_the_right_token_are_401_and_change_nothing(
    locked, headers
):
    run_id, sweep_id = _seed(locked.client)
    before = stored_rows()
    for method, path, body in _writes(run_id, sweep_id):
        response = locked.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
    assert stored_rows() == before
    assert locked.run(run_id)["status"] == "queued"


def test_state_changing_requests_with_the_right_bearer_token_work(locked):
    run_id, sweep_id = _seed(locked.client)
    expected = [201, 201, 200, 200, 200, 200, 204, 200, 200]
    for (method, path, body), status in zip(_writes(run_id, sweep_id), expected):
        response = locked.client.request(method, path, json=body, headers=BEARER)
        assert response.status_code == status, (method, path, response.text)
    assert locked.client.get(f"/api/runs/{run_id}").status_code == 404  # deleted


def test_token_is_compared_in_constant_time(locked, monkeypatch):
    calls = []
    compare = sessions.hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(sessions.hmac, "compare_digest", recording)
    assert locked.client.post("/api/runs", json=TINY, headers=BEARER).status_code == 201
    assert (TOKEN.encode(), TOKEN.encode()) in calls


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/runs", "/api/runs/1", "/api/runs/1/metrics", "/api/sweeps/1",
             "/api/runs.csv", "/api/presets", "/api/config-schema", "/", "/runs/1", "/login"]
)  # fmt: skip
def test_reads_stay_open_without_a_token(locked, path):
    # By design: reads are open (see the module docstring); only writes need the token.
    _seed(locked.client)
    assert locked.client.get(path).status_code == 200, path


# ------------------------------------------------------------------ login, cookie, CSRF


def _login(client, token: str = TOKEN, next_url: str = "/"):
    page = client.get("/login")  # a page: sets the rl_csrf cookie a browser keeps
    assert page.status_code == 200 and "<form" in page.text
    return client.post("/login", data={"token": token, "next": next_url}, follow_redirects=False)


def _set_cookie_headers(response) -> list[str]:
    return response.headers.get_list("set-cookie")


def test_login_with_the_right_token_sets_an_httponly_samesite_strict_cookie(locked):
    response = _login(locked.client)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(c for c in _set_cookie_headers(response) if c.startswith(f"{AUTH_COOKIE}="))
    attributes = {a.strip().lower() for a in cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert TOKEN not in cookie


def test_login_with_a_wrong_token_sets_no_cookie_and_shows_the_error(locked):
    response = _login(locked.client, token="nope")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?error=")
    assert not any(c.startswith(f"{AUTH_COOKIE}=") for c in _set_cookie_headers(response))
    assert locked.client.post("/api/runs", json=TINY).status_code == 401


def test_a_wrong_token_sends_back_to_login_keeping_a_next_with_its_own_query(locked):
    target = "/runs?status=failed&tag=a b#x"
    response = _login(locked.client, token="nope", next_url=target)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query == {"error": ["wrong token"], "next": [target]}


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "javascript:x"])
def test_login_redirects_only_to_paths_on_this_site(locked, target):
    response = _login(locked.client, next_url=target)
    assert response.headers["location"] == "/"


def test_login_cookie_with_the_csrf_header_can_post(locked):
    client = locked.client
    _login(client)
    csrf = client.cookies.get(CSRF_COOKIE)
    assert csrf and client.cookies.get(AUTH_COOKIE)
    response = client.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.text


def test_login_cookie_without_the_csrf_header_is_403_and_stores_nothing(locked):
    client = locked.client
    _login(client)
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        response = client.post("/api/runs", json=TINY, headers=headers)
        assert response.status_code == 403, response.text
    assert stored_rows()["runs"] == 0


def test_login_cookie_alone_without_any_csrf_cookie_is_403(locked):
    # A request that carries the session cookie but no rl_csrf cookie (so there is nothing to
    # echo) must not slip past the double-submit check.
    client = locked.client
    _login(client)
    session = client.cookies.get(AUTH_COOKIE)
    client.cookies.clear()
    response = client.post("/api/runs", json=TINY, headers={"Cookie": f"{AUTH_COOKIE}={session}"})
    assert response.status_code == 403, response.text
    assert stored_rows()["runs"] == 0


def test_logout_forgets_the_session(locked):
    client = locked.client
    _login(client)
    csrf = client.cookies.get(CSRF_COOKIE)
    client.post("/logout", follow_redirects=False)
    response = client.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 401


def _post_with_copied_cookie(client, session: str, csrf: str):
    """What a second browser (or a thief) holding a copy of both cookies would send."""
    client.cookies.clear()
    cookies = f"{AUTH_COOKIE}={session}; {CSRF_COOKIE}={csrf}"
    return client.post("/api/runs", json=TINY, headers={"Cookie": cookies, "X-CSRF-Token": csrf})


def test_logout_revokes_the_session_so_a_copied_cookie_stops_working(locked):
    client = locked.client
    browsers = []
    for _ in range(2):  # two browsers, each logged in
        client.cookies.clear()
        _login(client)
        browsers.append((client.cookies.get(AUTH_COOKIE), client.cookies.get(CSRF_COOKIE)))
    (session, csrf), (other_session, other_csrf) = browsers
    assert _post_with_copied_cookie(client, session, csrf).status_code == 201
    logout = client.post(
        "/logout", headers={"Cookie": f"{AUTH_COOKIE}={session}"}, follow_redirects=False
    )
    assert logout.status_code == 303
    assert _post_with_copied_cookie(client, session, csrf).status_code == 401
    assert stored_rows()["runs"] == 1
    # The other browser's session lives on.
    assert _post_with_copied_cookie(client, other_session, other_csrf).status_code == 201


def test_each_login_gets_a_random_session_id_stored_only_as_its_hash(locked):
    ids = []
    for _ in range(2):
        _login(locked.client)
        ids.append(locked.client.cookies.get(AUTH_COOKIE))
        locked.client.cookies.clear()
    assert ids[0] != ids[1] and all(len(i) >= 32 for i in ids)
    with new_session() as session:
        rows = session.scalars(select(LoginSession)).all()
    assert len(rows) == 2
    stored = {getattr(r, c.name) for r in rows for c in LoginSession.__table__.columns}
    assert not {*ids, TOKEN} & {str(v) for v in stored}
    for row in rows:
        assert row.revoked_at is None and row.expires_at > row.created_at


def test_an_expired_session_is_refused(locked):
    client = locked.client
    _login(client)
    session, csrf = client.cookies.get(AUTH_COOKIE), client.cookies.get(CSRF_COOKIE)
    with new_session() as db:
        db.execute(update(LoginSession).values(expires_at=utcnow()))
        db.commit()
    assert _post_with_copied_cookie(client, session, csrf).status_code == 401


def test_a_new_api_token_ends_the_sessions_opened_under_the_old_one(locked, monkeypatch):
    client = locked.client
    _login(client)
    session, csrf = client.cookies.get(AUTH_COOKIE), client.cookies.get(CSRF_COOKIE)
    monkeypatch.setenv("API_TOKEN", "a brand new token")
    get_settings.cache_clear()
    assert _post_with_copied_cookie(client, session, csrf).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
    ids=["other-origin", "null-origin", "lookalike", "sec-fetch-site"],
)
def test_cross_site_requests_are_403_even_with_a_valid_login(locked, headers):
    client = locked.client
    _login(client)
    csrf = client.cookies.get(CSRF_COOKIE)
    response = client.post("/api/runs", json=TINY, headers={"X-CSRF-Token": csrf, **headers})
    assert response.status_code == 403, response.text
    assert stored_rows()["runs"] == 0


def test_cross_site_login_is_refused(locked):
    response = locked.client.post(
        "/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403
    assert not any(c.startswith(f"{AUTH_COOKIE}=") for c in _set_cookie_headers(response))


def test_same_origin_post_with_the_csrf_header_works_without_a_token_configured(make_service):
    client = make_service(None).client
    client.get("/")
    csrf = client.cookies.get(CSRF_COOKIE)
    same_origin = {"Origin": "http://testserver"}
    response = client.post("/api/runs", json=TINY, headers={**same_origin, "X-CSRF-Token": csrf})
    assert response.status_code == 201
    # A browser holding the rl_csrf cookie must echo it, token or no token.
    assert client.post("/api/runs", json=TINY, headers=same_origin).status_code == 403


# ------------------------------------------------------------------ security headers


def _csp_sources(policy: str) -> list[str]:
    sources = []
    for directive in filter(None, (d.strip() for d in policy.split(";"))):
        sources += directive.split()[1:]
    return sources


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/runs"),
        ("GET", "/api/runs/999"),  # 404
        ("GET", "/api/runs/abc"),  # 422
        ("POST", "/api/runs"),  # 401
        ("GET", "/healthz"),
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/sweeps/new"),
    ],
)
def test_every_response_carries_the_security_headers(locked, method, path):
    response = locked.client.request(method, path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    allowed = {"'self'", "'none'", "'unsafe-inline'", "'unsafe-eval'", "data:", "blob:"}
    assert set(_csp_sources(policy)) <= allowed, policy  # no external host, no wildcard
    (script_src,) = [d for d in policy.split(";") if d.split()[0] == "script-src"]
    assert "'unsafe-inline'" not in script_src, policy


TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = Path(security.__file__).resolve().parent / "static"


# report.html is no page of the app: it is a file to download and open offline, so it must
# carry its scripts inline (served as an attachment, never rendered under the policy:
# tests/app/test_report.py checks the Content-Disposition).
PAGES = sorted(p for p in TEMPLATES.glob("*.html") if p.name != "report.html")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_templates_have_no_inline_scripts_or_event_handlers(path):
    # The policy forbids inline scripts; a page that had one would break silently.
    html = path.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html, re.I):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.I), "inline event handler"
    assert "javascript:" not in html.lower()


# Our own scripts; plotly.js (app/static/plotly/) is the project's release as published.
OWN_SCRIPTS = sorted(p for p in STATIC.rglob("*.js") if "plotly" not in p.relative_to(STATIC).parts)


@pytest.mark.parametrize("path", OWN_SCRIPTS, ids=lambda p: p.name)
def test_scripts_build_no_inline_handlers_or_html_strings(path):
    code = path.read_text()
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML\(|document\.write\(", code)
    assert not re.search(r"setAttribute\(\s*[\"'`]on", code), "handler set as an attribute"
    assert not re.search(r"[\"'`][^\"'`]*<[a-z]+[^>]*\son[a-z]+=", code), "handler in markup"


def test_pages_set_the_csrf_cookie_readable_by_scripts_but_same_site_strict(locked):
    response = locked.client.get("/")
    cookie = next(c for c in _set_cookie_headers(response) if c.startswith(f"{CSRF_COOKIE}="))
    attributes = {a.strip().lower() for a in cookie.split(";")}
    assert "samesite=strict" in attributes and "httponly" not in attributes
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 32


# ------------------------------------------------------------------ paths


@settings(max_examples=60, deadline=None)
@given(
    run_id=st.one_of(
        st.integers(),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(["../../etc", "1/../../x", "/etc/passwd", "..", "1\x00", "~root"]),
        st.booleans(),
        st.none(),
    )
)
def test_run_dirs_stay_inside_runs_dir_whatever_the_id(tmp_path_factory, run_id):
    base = tmp_path_factory.getbasetemp() / "runs"
    try:
        path = run_dir(base, run_id)
    except (ValueError, TypeError, OverflowError):
        return
    assert path.parent == base.resolve()
    assert re.fullmatch(r"run--?\d+", path.name)


def test_a_run_dir_symlinked_out_of_runs_dir_is_refused(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    (runs / "run-7").symlink_to(outside)
    with pytest.raises(ValueError):
        run_dir(runs, 7)


def test_checkpoint_download_uses_the_path_derived_from_the_id_not_a_stored_one(locked):
    run_id, _ = _seed(locked.client)
    with new_session() as session:  # as if a row had been tampered with
        session.execute(update(Run).where(Run.id == run_id).values(checkpoint_path="/etc/passwd"))
        session.commit()
    assert locked.client.get(f"/api/runs/{run_id}/checkpoint").status_code == 404
    checkpoint = run_dir(Path(locked.env["RESNET_LAB_HOME"]) / "runs", run_id) / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    response = locked.client.get(f"/api/runs/{run_id}/checkpoint")
    assert response.status_code == 200 and response.content == b"weights"


# ------------------------------------------------------------------ submission rate


def test_submissions_past_the_per_client_rate_are_429_with_retry_after_and_not_stored(
    make_service,
):
    client = make_service(None, SUBMIT_RATE_PER_MINUTE="5").client
    for _ in range(3):
        assert client.post("/api/runs", json=TINY).status_code == 201
    sweep = {"base": TINY, "grid": {"width": [2, 4, 8]}}  # 3 runs: 6 > 5
    refused = client.post("/api/sweeps", json=sweep)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    ok = client.post("/api/sweeps", json={**sweep, "grid": {"width": [2, 4]}})
    assert ok.status_code == 201  # exactly 5
    for headers in ({}, {"X-Forwarded-For": "10.9.8.7"}):  # a forged header changes nothing
        response = client.post("/api/runs", json=TINY, headers=headers)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
    assert stored_rows()["runs"] == 5 and stored_rows()["sweeps"] == 1


def test_submission_window_is_per_client():
    limiter = SubmissionLimiter()
    assert limiter.take("10.0.0.1", 5, per_minute=5) is None
    assert limiter.take("10.0.0.1", 1, per_minute=5) is not None
    assert limiter.take("10.0.0.2", 5, per_minute=5) is None


# ------------------------------------------------------------------ no pickle on the wire


def test_celery_accepts_and_sends_json_only():
    from worker.celery_app import celery_app

    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == "json"
    assert celery_app.conf.result_serializer == "json"


EXPLOITED: list[int] = []


def _exploit() -> None:
    EXPLOITED.append(1)


class _Payload:
    def __reduce__(self):
        return (_exploit, ())


def test_a_pickled_message_is_refused_without_being_unpickled():
    from worker.celery_app import celery_app

    accept = prepare_accept_content(celery_app.conf.accept_content)

    def message(body: bytes, content_type: str, encoding: str) -> Message:
        return Message(
            body=body, content_type=content_type, content_encoding=encoding, accept=accept
        )

    with pytest.raises(ContentDisallowed):
        message(pickle.dumps(_Payload()), "application/x-python-serialize", "binary").decode()
    assert EXPLOITED == []
    assert message(b"[[7], {}, {}]", "application/json", "utf-8").decode() == [[7], {}, {}]
