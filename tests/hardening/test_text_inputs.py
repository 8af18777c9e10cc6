"""Every text and id parameter of the API, over the whole Unicode range: digits outside
ASCII ("²", "٣", "𑽑"), NUL, lone surrogates, right-to-left marks (U+200F, U+202E).

Each answer is below 500 and, when it is an error, JSON. A 422 names the parameter, and
gives the reason where one applies: "ASCII digits only" for a number or id written in other
digits, "NUL" or "lone surrogates" for text a database cannot hold. A refused write stores
nothing. Each test runs on SQLite and on PostgreSQL (whose text refuses NUL outright).

Query and path values travel as UTF-8 in the URL; a lone surrogate goes as its raw bytes
(ED A0 80), which the server reads as U+FFFD, so only JSON bodies deliver one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from app.text import has_other_digits, is_unicode
from core.db import Run, Sweep, new_session
from tests.conftest import TINY
from tests.hardening.conftest import stored_rows
from trainer.config import TrainConfig

SPECIAL = ["²", "٣", "١٢", "𑽑", "\x00", "\ud800", "\udc80", "\u200f", "\u202e", "#", "=",
           ",", ":", " ", "0", "1", "9", "width", "lr_ratio"]  # fmt: skip
# Any code point (surrogates included), and often one of the above; or a number-like word
# in digits of any script ("#٣", "width=²", "1,𑽑"), where the traps are.
ANY_TEXT = st.lists(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL)), max_size=12
).map("".join)
DIGITS = st.one_of(st.characters(categories=("Nd", "No")), st.sampled_from("0123456789"))
NUMBER_LIKE = st.tuples(
    st.sampled_from(["", "#", "width=", "lr_ratio=", "1,", "1:"]),
    st.text(DIGITS, min_size=1, max_size=5),
).map("".join)
TEXT = st.one_of(ANY_TEXT, NUMBER_LIKE)
# The values every parameter gets in any case (the examples among them).
NASTY = ["²", "#²", "٣", "#٣", "١٢", "𑽑", "1²", "x²", "\x00", "a\x00b", "\ud800", "\udc80",
         "\u200fabc", "\u202e1", "width=٣", "lr_ratio=٣:1:1", "٣:1:1", "1, 2", "", " "]  # fmt: skip

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    # One installation per test, shared by its examples on purpose (see test_schema_fuzz).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WRITES = settings(PROPERTY, max_examples=40)


@pytest.fixture
def api(database_url, make_service):
    """Run 1 (with a name, tags and a note) and sweep 1 (runs 2 and 3), on each database."""
    service = make_service(None, database_url, SUBMIT_RATE_PER_MINUTE="1000000", MAX_SWEEP_RUNS="8")
    client = service.client
    run = client.post("/api/runs", json=TINY)
    assert run.status_code == 201, run.text
    patched = client.patch("/api/runs/1", json={"name": "first", "tags": ["a"], "note": "n"})
    assert patched.status_code == 200, patched.text
    sweep = client.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2, 4]}})
    assert sweep.status_code == 201, sweep.text
    return client


# ------------------------------------------------------------------ what each parameter is


@dataclass(frozen=True)
class Param:
    method: str
    path: str  # "{}" marks where a path value goes
    name: str
    kind: str  # text, search, ratio, number, ids or free (text that no database sees)

    @property
    def where(self) -> str:
        return "path" if "{}" in self.path else "query"

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.name}"


NO_RUN = 999_999  # event streams of a missing run answer 404 instead of streaming

READS = [
    *(Param("GET", "/api/runs", name, "text")
      for name in ("dataset", "activation", "augmentation", "tag", "worker")),
    Param("GET", "/api/runs", "lr_ratio", "ratio"),
    Param("GET", "/api/runs", "q", "search"),
    *(Param("GET", "/api/runs", name, "number")
      for name in ("sweep_id", "seed", "limit", "offset")),
    Param("GET", "/api/runs.csv", "sweep_id", "number"),
    Param("GET", "/api/runs/1/logs", "after", "number"),
    Param("GET", "/api/runs/1/logs", "limit", "number"),
    Param("GET", "/api/sweeps", "limit", "number"),
    Param("GET", "/api/sweeps", "offset", "number"),
    Param("GET", f"/api/runs/{NO_RUN}/events", "after_epoch", "number"),
    Param("GET", "/api/metrics", "run_ids", "ids"),
    Param("GET", "/api/sweeps/1", "baseline", "free"),
    Param("GET", "/api/sweeps/1/cells", "by", "free"),
    *(Param("GET", f"/api/runs/{{}}{tail}", "run_id", "number")
      for tail in ("", "/metrics", "/metrics.csv", "/logs", "/attempts", "/checkpoint", "/events")),
    *(Param("GET", f"/api/sweeps/{{}}{tail}", "sweep_id", "number")
      for tail in ("", ".csv", "/cells", "/events")),
    Param("GET", "/runs/{}", "run_id", "number"),
    Param("GET", "/sweeps/{}", "sweep_id", "number"),
    Param("GET", "/runs/new", "copy", "number"),
    Param("GET", "/compare", "run_ids", "free"),
    Param("GET", "/static/{}", "path", "free"),
    Param("GET", "/static/js/{}.js", "path", "free"),
    Param("GET", "/static/vendor/{}", "name", "free"),
]  # fmt: skip
WRITES_BY_ID = [
    Param("POST", "/api/runs/{}/cancel", "run_id", "number"),
    Param("POST", "/api/runs/{}/retry", "run_id", "number"),
    Param("DELETE", "/api/runs/{}", "run_id", "number"),
    Param("POST", "/api/sweeps/{}/cancel", "sweep_id", "number"),
    Param("POST", "/api/sweeps/{}/retry", "sweep_id", "number"),
]
STORED_KINDS = {"text", "search", "ratio"}  # compared with stored text by the database
EXISTING = {1, 2, 3}


def _sent(value: str) -> str:
    """`value` as the server reads it from a URL (a lone surrogate arrives as U+FFFD)."""
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _number_word(word: str) -> bool:
    """A search word meant as a number: an id ("12", "#12") or a config `field=value`."""
    field, eq, value = word.partition("=")
    number = word.removeprefix("#")
    return (number.isdigit() and not number.isascii()) or (
        bool(eq) and field in TrainConfig.model_fields and has_other_digits(value)
    )


def reasons(kind: str, value: str) -> set[str]:
    """The words, one of which a refusal of `value` must give; none when it may pass."""
    found = set()
    if kind in STORED_KINDS | {"stored"} and "\x00" in value:
        found.add("NUL")
    if kind == "stored" and not is_unicode(value):
        found.add("lone surrogates")
    if kind in ("number", "ids", "ratio") and has_other_digits(value):
        found.add("ASCII digits only")
    if kind == "search" and any(_number_word(word) for word in value.split()):
        found.add("ASCII digits only")
    return found


def _would_stream(param: Param, value: str) -> bool:
    """An event stream of a run or sweep that exists never ends: such a value is skipped."""
    if not param.path.endswith("/events") or param.where != "path":
        return False
    try:
        return TypeAdapter(int).validate_python(_sent(value)) in EXISTING
    except ValidationError:
        return False


def request(api, param: Param, value: str):
    raw = quote(value.encode("utf-8", "surrogatepass"), safe="")
    if param.where == "path":
        url = param.path.replace("{}", raw)
    else:
        url = f"{param.path}?{param.name}={raw}"
    api.cookies.clear()  # a page's CSRF cookie would make the writes below a 403
    return api.request(param.method, url)


def check_answer(response, param: Param, value: str) -> None:
    """Below 500; an error is JSON; a 422 names the parameter and the reason, if any."""
    assert response.status_code < 500, (str(param), value, response.text)
    sent = _sent(value)
    # A "/" in a path value makes another path: what answers is that path's route.
    rerouted = param.where == "path" and "/" in sent
    expected = set() if rerouted else reasons(param.kind, sent)
    if response.status_code < 400:
        assert not expected, (str(param), value, response.status_code)
        return
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert "detail" in body, response.text
    if rerouted:
        return
    assert response.status_code == 422 or not expected, (str(param), value, response.text)
    if response.status_code == 422:
        named = [err for err in body["detail"] if err["loc"] == [param.where, param.name]]
        assert named, (str(param), value, response.text)
        if expected:
            assert any(word in err["msg"] for err in named for word in expected), response.text


def _rows_and_runs() -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    with new_session() as session:
        runs = session.execute(
            select(Run.id, Run.status, Run.name, Run.note, Run.tags).order_by(Run.id)
        ).all()
        sweeps = session.execute(select(Sweep.id, Sweep.name).order_by(Sweep.id)).all()
    return stored_rows(), [tuple(r) for r in runs] + [tuple(s) for s in sweeps]


# ------------------------------------------------------------------ the examples


@pytest.mark.parametrize(
    ("url", "loc", "words"),
    [
        ("/api/runs?q=%C2%B2", ["query", "q"], "ASCII digits only"),
        ("/api/runs?q=%23%C2%B2", ["query", "q"], "ASCII digits only"),
        ("/api/metrics?run_ids=%F0%91%BD%91", ["query", "run_ids"], "ASCII digits only"),
        ("/api/runs?q=a%00b", ["query", "q"], "NUL"),
        ("/api/runs/%D9%A3", ["path", "run_id"], "ASCII digits only"),
    ],
)
def test_the_reported_query_inputs_are_422_naming_the_field_and_the_reason(api, url, loc, words):
    response = api.get(url)
    assert response.status_code == 422, response.text
    errors = [err for err in response.json()["detail"] if err["loc"] == loc]
    assert errors and words in errors[0]["msg"], response.text


def test_a_nul_in_a_static_path_is_404(api):
    response = api.get("/static/js/%00.js")
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "Not found"}
    assert api.get("/static/" + "a" * 300).status_code == 404  # a name too long to open


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "words"),
    [
        ("PATCH", "/api/runs/1", {"name": "\ud800"}, "name", "no lone surrogates"),
        ("PATCH", "/api/runs/1", {"note": "\udc80"}, "note", "no lone surrogates"),
        ("PATCH", "/api/runs/1", {"name": "a\x00b"}, "name", "NUL"),
        ("PATCH", "/api/runs/1", {"note": "\x00"}, "note", "NUL"),
        ("POST", "/api/sweeps", {"name": "\udc80", "grid": {"width": [2]}}, "name", "surrogates"),
        ("POST", "/api/sweeps", {"name": "\x00", "grid": {"width": [2]}}, "name", "NUL"),
        ("POST", "/api/runs", {"lr_ratio": "٣:1:1"}, "lr_ratio", "ASCII digits only"),
    ],
)
def test_the_reported_bodies_are_422_naming_the_field_and_nothing_is_stored(
    api, method, path, body, field, words
):
    before = _rows_and_runs()
    response = api.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    errors = [err for err in response.json()["detail"] if err["loc"][-1] == field]
    assert errors and words in errors[0]["msg"], response.text
    assert _rows_and_runs() == before


# ------------------------------------------------------------------ every parameter


def test_every_parameter_refuses_the_known_traps_with_a_4xx(api):
    # One installation for all of them: the assertions name the parameter and the value.
    for value in NASTY:
        check_reads(api, value)
        for param in WRITES_BY_ID:
            check_write(api, param, value)


def check_reads(api, value: str) -> None:
    for param in READS:
        if not _would_stream(param, value):
            check_answer(request(api, param, value), param, value)


def check_write(api, param: Param, value: str) -> None:
    before = _rows_and_runs()
    response = request(api, param, value)
    check_answer(response, param, value)
    if response.status_code >= 400:
        assert _rows_and_runs() == before, (str(param), value)


@PROPERTY
@given(value=TEXT)
@example(value="\u202e\u200f")
def test_reads_answer_any_unicode_below_500_naming_what_they_refuse(api, value):
    # Every read parameter gets each value: a trap is one parameter and one value.
    check_reads(api, value)


@WRITES
@given(param=st.sampled_from(WRITES_BY_ID), value=TEXT)
def test_writes_by_id_refuse_any_other_text_and_then_change_nothing(api, param, value):
    check_write(api, param, value)


# ------------------------------------------------------------------ text in bodies


@dataclass(frozen=True)
class Field:
    method: str
    path: str
    name: str
    kind: str  # stored (kept as sent), config (a trainer config field) or list (tags)

    def body(self, value: str) -> dict[str, Any]:
        if self.path == "/api/runs":
            return {**TINY, self.name: value}
        if self.path.startswith("/api/sweeps"):
            if self.name == "name":
                return {"name": value, "base": TINY, "grid": {"width": [2]}}
            return {"base": TINY, "grid": {self.name: [value]}}
        return {self.name: [value] if self.kind == "list" else value}


BODY_FIELDS = [
    Field("PATCH", "/api/runs/1", "name", "stored"),
    Field("PATCH", "/api/runs/1", "note", "stored"),
    Field("PATCH", "/api/runs/1", "tags", "list"),
    Field("POST", "/api/sweeps", "name", "stored"),
    Field("POST", "/api/sweeps/estimate", "name", "stored"),
    *(Field("POST", "/api/runs", name, "config")
      for name in ("lr_ratio", "dataset", "activation", "augmentation")),
    Field("POST", "/api/sweeps", "lr_ratio", "config"),
]  # fmt: skip


def _body_reasons(field: Field, value: str) -> set[str]:
    """As `reasons`, for a body field: tags and config choices refuse other text for
    reasons of their own (not a tag, not a choice)."""
    if field.kind == "stored":
        return reasons("stored", value)
    if field.name == "lr_ratio" and has_other_digits(value):
        return {"ASCII digits only"}
    return set()


def _kept(api, field: Field, value: str, response) -> tuple[Any, Any]:
    """What the database holds now, and what it should hold, for an accepted name or note."""
    if field.path == "/api/runs/1":
        return api.get("/api/runs/1").json()[field.name], value.strip() or None
    sweep = api.get(f"/api/sweeps/{response.json()['id']}").json()
    return sweep["name"], value or "width"  # an empty name gives the grid's factors


@WRITES
@given(field=st.sampled_from(BODY_FIELDS), value=TEXT)
@example(field=BODY_FIELDS[0], value="\u200fright-to-left\u202e")
@example(field=BODY_FIELDS[3], value="\u202e")
def test_text_in_bodies_is_stored_as_sent_or_refused_naming_the_field(api, field, value):
    before = _rows_and_runs()
    response = api.request(
        field.method,
        field.path,
        content=json.dumps(field.body(value)),  # ASCII JSON: a lone surrogate as \ud800
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code < 500, (field, value, response.text)
    expected = _body_reasons(field, value)
    if response.status_code >= 400:
        assert response.status_code == 422, response.text
        errors = [err for err in response.json()["detail"] if field.name in err["loc"]]
        assert errors, (field, value, response.text)
        if expected:
            assert any(w in err["msg"] for err in errors for w in expected), response.text
        assert _rows_and_runs() == before, (field, value)
        return
    assert not expected, (field, value, response.text)
    if field.kind == "stored" and field.path != "/api/sweeps/estimate":
        stored, sent = _kept(api, field, value, response)
        assert stored == sent, (field, value)
