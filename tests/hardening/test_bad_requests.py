"""Bad requests get a clear 4xx and leave nothing behind (rows counted in the database)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY
from tests.hardening.conftest import NOTHING, stored_rows

MAX_BODY = 4096
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(make_service):
    # Small limits so that "too big" is cheap to send.
    return make_service(None, MAX_BODY_BYTES=str(MAX_BODY), MAX_SWEEP_RUNS="8").client


def _detail_names(response, name: str) -> bool:
    return any(name in map(str, err["loc"]) for err in response.json()["detail"])


# ------------------------------------------------------------------ oversized bodies


@pytest.mark.parametrize("path", ["/api/runs", "/api/sweeps", "/api/sweeps/estimate"])
def test_body_over_max_body_bytes_is_413_before_anything_is_read_or_stored(api, path):
    body = json.dumps({"name": "x" * MAX_BODY, "preset": "report"})
    response = api.post(path, content=body, headers=JSON)
    assert response.status_code == 413, response.text
    assert str(MAX_BODY) in response.json()["detail"]
    assert stored_rows() == NOTHING


def test_streamed_body_without_content_length_is_cut_off_at_max_body_bytes(api):
    def chunks():
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'", "preset": "report"}'

    response = api.post("/api/sweeps", content=chunks(), headers=JSON)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413, response.text
    assert stored_rows() == NOTHING


def test_body_just_under_the_limit_is_read(api):
    body = json.dumps({**TINY, "lr_ratio": "5:4:1" + " " * (MAX_BODY - 200)})
    assert len(body) < MAX_BODY
    response = api.post("/api/runs", content=body, headers=JSON)
    assert response.status_code == 201, response.text


def test_invalid_content_length_is_400(api):
    response = api.post("/api/runs", content=b"{}", headers={**JSON, "Content-Length": "12x"})
    assert response.status_code == 400
    assert stored_rows() == NOTHING


# ------------------------------------------------------------------ huge grids


@pytest.mark.parametrize(
    "body",
    [
        {"base": TINY, "grid": {"activation": ["relu", "tanh", "sigmoid"]}, "seeds": [0, 1, 2]},
        {"preset": "report"},  # 36 runs
        {"grid": {"width": list(range(1, 101)), "epochs": list(range(1, 101))}},  # 10,000
        {"grid": {f: list(range(1, 101)) for f in ("width", "epochs", "batch_size")}},
    ],
    ids=["9-runs", "report", "10k", "1m"],
)
def test_grid_over_max_sweep_runs_is_422_naming_the_grid_and_nothing_stored(api, body):
    response = api.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert _detail_names(response, "grid"), response.text
    assert "MAX_SWEEP_RUNS" in response.text
    assert stored_rows() == NOTHING


def test_grid_at_max_sweep_runs_is_accepted(api):
    body = {"base": TINY, "grid": {"activation": ["relu", "tanh"], "width": [2, 4]}}
    response = api.post("/api/sweeps", json={**body, "seeds": [0, 1]})
    assert response.status_code == 201, response.text
    assert len(response.json()["run_ids"]) == 8


def test_estimate_of_a_grid_over_the_limit_says_so_without_storing(api):
    response = api.post("/api/sweeps/estimate", json={"preset": "report", "seeds": [0, 1]})
    assert response.status_code == 200, response.text
    assert response.json()["runs"] == 72 and response.json()["max_runs"] == 8
    assert stored_rows() == NOTHING


def test_one_bad_cell_refuses_the_whole_grid(api):
    grid = {"activation": ["relu", "tanh"], "width": [4, 0]}  # width 0 is out of range
    response = api.post("/api/sweeps", json={"base": TINY, "grid": grid})
    assert response.status_code == 422
    assert any(err["loc"] == ["body", "grid", "width"] for err in response.json()["detail"])
    assert stored_rows() == NOTHING


# ------------------------------------------------------------------ ids


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/runs/abc"),
        ("GET", "/api/runs/1.5"),
        ("GET", "/api/runs/0"),
        ("GET", "/api/runs/-1"),
        ("GET", "/api/runs/99999999999999999999"),
        ("GET", "/api/runs/1e3/metrics"),
        ("GET", "/api/runs/abc/checkpoint"),
        ("GET", "/api/runs/abc/events"),
        ("POST", "/api/runs/abc/cancel"),
        ("POST", "/api/runs/abc/retry"),
        ("DELETE", "/api/runs/abc"),
        ("GET", "/api/sweeps/abc"),
        ("GET", "/api/sweeps/abc.csv"),
        ("GET", "/api/sweeps/abc/events"),
        ("POST", "/api/sweeps/abc/cancel"),
        ("GET", "/api/metrics?run_ids=1,abc"),
        ("GET", "/api/metrics?run_ids=1;DROP TABLE runs"),
        ("GET", "/api/runs?sweep_id=abc"),
        ("GET", "/api/runs?limit=100000"),
        ("GET", "/api/runs?sort=config"),
    ],
)
def test_non_numeric_or_out_of_range_ids_are_422(api, method, path):
    response = api.request(method, path)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] in ("path", "query")


def test_more_than_500_ids_in_one_curves_call_is_422(api):
    ids = ",".join(str(i) for i in range(1, 502))
    assert api.get("/api/metrics", params={"run_ids": ids}).status_code == 422


def test_unknown_ids_are_404_with_nothing_changed(api):
    for method, path in [
        ("GET", "/api/runs/12345"),
        ("POST", "/api/runs/12345/cancel"),
        ("DELETE", "/api/runs/12345"),
        ("GET", "/api/sweeps/12345"),
        ("POST", "/api/sweeps/12345/retry"),
    ]:
        assert api.request(method, path).status_code == 404, (method, path)
    assert stored_rows() == NOTHING


# ------------------------------------------------------------------ presets and sweep bodies


@pytest.mark.parametrize("preset", ["paper", "REPORT", "", None, 1, ["report"]])
def test_unknown_sweep_preset_is_422_naming_the_preset_and_nothing_stored(api, preset):
    response = api.post("/api/sweeps", json={"preset": preset, "seeds": [0]})
    assert response.status_code == 422, response.text
    assert preset is None or _detail_names(response, "preset"), response.text
    assert stored_rows() == NOTHING


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"preset": "report", "seeds": [True]}, "seeds"),
        ({"preset": "report", "seeds": ["1"]}, "seeds"),
        ({"preset": "report", "seeds": [0, 0]}, "seeds"),
        ({"preset": "report", "seeds": [-1]}, "seeds"),
        ({"preset": "report", "colour": "red"}, "colour"),
        ({"grid": {"width": [2]}, "base": {"epochs": "5"}}, "epochs"),
        ({"grid": {"epochs": [2.0]}, "base": TINY}, "epochs"),
        ({"grid": {"seed": [1, 2]}}, "grid"),
    ],
)
def test_bad_sweep_bodies_are_422_naming_the_part_and_nothing_stored(api, body, where):
    response = api.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert _detail_names(response, where), response.text
    assert stored_rows() == NOTHING


def test_base_fields_the_grid_overrides_are_not_stored(api):
    # The grid's values replace them in every cell, so no cell ever validated them.
    base = {**TINY, "epochs": 10**30}
    response = api.post("/api/sweeps", json={"base": base, "grid": {"epochs": [1, 2]}})
    assert response.status_code == 201, response.text
    assert "epochs" not in response.json()["base"]
    assert api.get("/api/sweeps").status_code == 200


def test_sweep_cancel_with_non_integer_or_huge_run_ids_is_422(api):
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2]}}).json()
    for body in ({"run_ids": [True]}, {"run_ids": ["1"]}, {"ids": [1]}, {"run_ids": [2**63]}):
        response = api.post(f"/api/sweeps/{sweep['id']}/cancel", json=body)
        assert response.status_code == 422, (body, response.text)
    assert api.get(f"/api/runs/{sweep['run_ids'][0]}").json()["status"] == "queued"


# ------------------------------------------------------------------ malformed bodies


@pytest.mark.parametrize(
    "content",
    [
        b'{"activation": ',
        b'{"activation": "tanh",}',
        b"{'activation': 'tanh'}",
        b"",
        b"null",
        b"[]",
        b'"tanh"',
        b'{"lr": NaN}',
        b'{"lr": Infinity}',
        b'{"a":' * 600 + b"1" + b"}" * 600,  # deep nesting: once a 500 (recursion in the 422)
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "single-quotes",
        "empty",
        "null",
        "array",
        "string",
        "nan",
        "infinity",
        "deep",
    ],
)
def test_malformed_json_is_422_and_nothing_stored(api, content):
    response = api.post("/api/runs", content=content, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert stored_rows() == NOTHING


def test_body_too_deep_to_parse_is_400_not_500(api):
    body = b"[" * 2000 + b"]" * 2000  # deeper than Python's recursion limit, under MAX_BODY
    response = api.post("/api/runs", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert stored_rows() == NOTHING


def test_body_that_is_not_utf8_is_400(api):
    response = api.post("/api/sweeps", content=b'{"preset": "\xff\xfe"}', headers=JSON)
    assert response.status_code == 400, response.text
    assert stored_rows() == NOTHING


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/xml"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},
    ],
    ids=["text", "xml", "form", "multipart", "none"],
)
def test_wrong_content_type_is_422_and_nothing_stored(api, headers):
    response = api.post("/api/runs", content=json.dumps(TINY), headers=headers)
    assert response.status_code == 422, response.text
    assert stored_rows() == NOTHING
