"""resnet_lab.Lab: unit tests over httpx.MockTransport, then against a real serve process."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

import resnet_lab
from resnet_lab.client import _events
from tests.conftest import TINY, free_port

# -- units: error mapping, paging, batching, retries, waiting over a dropped stream ----------


def mock_lab(handler, **kwargs) -> resnet_lab.Lab:
    return resnet_lab.Lab(
        "http://lab.test", token="t", transport=httpx.MockTransport(handler), **kwargs
    )


@pytest.fixture
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("resnet_lab.client.time.sleep", slept.append)
    return slept


@pytest.mark.parametrize(
    "status, body, headers, kind",
    [
        (404, {"detail": "run 9 not found"}, {}, resnet_lab.NotFound),
        (409, {"detail": "run 9 is succeeded; not cancellable"}, {}, resnet_lab.Conflict),
        (401, {"detail": "invalid API token"}, {}, resnet_lab.AuthError),
        (
            503,
            {"detail": "database unavailable: locked"},
            {"Retry-After": "5"},
            resnet_lab.Unavailable,
        ),
        (429, {"detail": "too many runs submitted"}, {"Retry-After": "12"}, resnet_lab.Unavailable),
        (500, {"detail": "internal server error"}, {}, resnet_lab.ServerError),
    ],
)
def test_error_statuses_map_to_exceptions_with_the_api_message(status, body, headers, kind):
    lab = mock_lab(lambda request: httpx.Response(status, json=body, headers=headers))
    with pytest.raises(kind) as caught:
        lab.cancel(9)
    assert caught.value.status_code == status
    assert str(caught.value) == body["detail"]
    if kind is resnet_lab.Unavailable:
        assert caught.value.retry_after == float(headers["Retry-After"])


def test_a_422_names_the_field_and_the_reason():
    detail = [
        {"loc": ["body", "width"], "msg": "Input should be less than or equal to 256", "type": "x"},
        {"loc": ["body", "grid", "activation"], "msg": "Input should be 'relu'", "type": "y"},
    ]
    lab = mock_lab(lambda request: httpx.Response(422, json={"detail": detail}))
    with pytest.raises(resnet_lab.ValidationError) as caught:
        lab.submit(width=1000)
    exc = caught.value
    assert exc.field == "width"
    assert [e.field for e in exc.errors] == ["width", "grid.activation"]
    assert str(exc).startswith("width: Input should be less than or equal to 256")


def test_an_error_without_json_keeps_its_text():
    lab = mock_lab(lambda request: httpx.Response(502, text="Bad Gateway from the proxy"))
    with pytest.raises(resnet_lab.ServerError, match="Bad Gateway from the proxy"):
        lab.run(1)


def fake_run(run_id: int, status: str = "succeeded", **config) -> dict:
    return {"id": run_id, "status": status, "config": {"activation": "relu", **config},
            "sweep_id": 1, "tags": [], "epochs_done": 2, "epochs_total": 2}  # fmt: skip


def test_runs_reads_every_page_with_the_filters():
    total, seen = 1203, []

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        seen.append(params)
        limit, offset = int(params["limit"]), int(params["offset"])
        items = [fake_run(i + 1) for i in range(offset, min(offset + limit, total))]
        return httpx.Response(200, json={"items": items, "total": total, "limit": limit,
                                         "offset": offset})  # fmt: skip

    runs = mock_lab(handler).runs(status=["queued", "running"], sweep=4, q="tanh", tag="x")
    assert [r.id for r in runs] == list(range(1, total + 1))
    assert [p["offset"] for p in seen] == ["0", "500", "1000"]
    assert all(int(p["limit"]) <= 500 for p in seen)
    assert seen[0].get_list("status") == ["queued", "running"]
    assert (seen[0]["sweep_id"], seen[0]["q"], seen[0]["tag"]) == ("4", "tanh", "x")
    assert mock_lab(handler).runs(limit=7).__len__() == 7


def test_bulk_sends_many_runs_or_a_filter_in_one_request():
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/api/runs/bulk")
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"action": "tag", "requested": 0, "done": 0,
                                         "skipped": 0, "results": []})  # fmt: skip

    lab = mock_lab(handler)
    lab.bulk("tag", [3, resnet_lab.Run.from_json(fake_run(5)), 3], tags=["keep"])
    lab.bulk("cancel", status="queued", sweep=4, activation="tanh", q=None)
    lab.bulk("retry")
    assert sent == [
        {"action": "tag", "ids": [3, 5], "tags": ["keep"]},
        {"action": "cancel", "filter": {"status": ["queued"], "sweep_id": 4,
                                        "activation": "tanh"}},
        {"action": "retry", "filter": {}},
    ]  # fmt: skip
    with pytest.raises(TypeError):
        lab.bulk("delete", [1], status="failed")


def test_metrics_are_long_and_batched_under_the_api_limit():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = [int(i) for i in request.url.params["run_ids"].split(",")]
        calls.append(ids)
        rows = [{"run_id": i, "epochs": [{"epoch": e, "test_acc": 0.5} for e in (1, 2)]}
                for i in ids]  # fmt: skip
        return httpx.Response(200, json={"runs": rows})

    table = mock_lab(handler).metrics(range(1, 1201), config=False)
    assert [len(c) for c in calls] == [500, 500, 200]
    assert len(table) == 2400
    assert table.rows()[1] == {"run_id": 1, "epoch": 2, "lr": None, "train_loss": None,
                               "train_acc": None, "test_loss": None, "test_acc": 0.5,
                               "seconds": None, "images_per_second": None}  # fmt: skip
    assert table.to_csv().splitlines()[0].startswith("run_id,epoch,lr")


def test_reads_retry_connection_errors_and_writes_do_not(no_sleep):
    attempts = {"GET": 0, "POST": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        attempts[request.method] += 1
        if request.method == "POST" or attempts["GET"] < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=fake_run(5))

    lab = mock_lab(handler)
    assert lab.run(5).id == 5
    assert attempts["GET"] == 3 and no_sleep == [0.5, 1.0]
    with pytest.raises(resnet_lab.ServerUnreachable, match="http://lab.test"):
        lab.submit(width=4)
    assert attempts["POST"] == 1


def test_wait_survives_a_dropped_stream_by_polling(no_sleep):
    polls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/statuses":
            return httpx.Response(200, json={"final": ["succeeded", "failed", "cancelled"]})
        if path.endswith("/events"):
            raise httpx.ReadError("connection reset", request=request)
        polls["n"] += 1
        return httpx.Response(200, json=fake_run(3, "running" if polls["n"] < 6 else "succeeded"))

    runs = mock_lab(handler).wait(3, progress=False, timeout=60)
    assert [(r.id, r.status) for r in runs] == [(3, "succeeded")]


def test_wait_reads_the_sweep_stream_until_end():
    statuses = iter(["queued", "queued", "succeeded", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/statuses":
            return httpx.Response(200, json={"final": ["succeeded", "failed", "cancelled"]})
        if path == "/api/sweeps/1/events":
            body = (": ping\n\n"
                    f"event: run\ndata: {json.dumps(fake_run(1))}\n\n"
                    f"event: run\ndata: {json.dumps(fake_run(2, 'failed'))}\n\n"
                    'event: end\ndata: {"sweep_id": 1}\n\n')  # fmt: skip
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=fake_run(int(path.rsplit("/", 1)[1]), next(statuses)))

    sweep = resnet_lab.Sweep(id=1, name="s", run_ids=[1, 2])
    lab = mock_lab(handler)
    lab.runs = lambda **_: resnet_lab.Table([resnet_lab.Run.from_json(fake_run(i, "queued"))
                                             for i in (1, 2)])  # fmt: skip
    runs = lab.wait(sweep, progress=False, timeout=10)
    assert [(r.id, r.status) for r in runs] == [(1, "succeeded"), (2, "failed")]


def test_event_lines_parse_into_events():
    lines = [": ping", "", "event: epoch", 'data: {"epoch": 1}', "", "data: plain", ""]
    assert list(_events(iter(lines))) == [("epoch", {"epoch": 1}), ("message", "plain")]


def test_to_pandas_names_the_extra_when_pandas_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    table = resnet_lab.Table([resnet_lab.Run.from_json(fake_run(1))])
    with pytest.raises(ImportError, match=r"resnet-lab\[pandas\]"):
        table.to_pandas()


def test_an_unreachable_server_is_named(no_sleep):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(resnet_lab.ServerUnreachable, match=url):
        resnet_lab.Lab(url, retries=2).runs()
    assert len(no_sleep) == 2


def test_the_client_imports_no_server_code():
    import subprocess

    code = ("import sys, resnet_lab; bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'app', 'core', 'trainer', 'worker', 'sqlalchemy'}); print(bad)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- against a real `resnet-lab serve` -------------------------------------------------------


@pytest.fixture(scope="module")
def lab(served):
    with resnet_lab.Lab(served.url, token=served.token, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def finished(lab, served):
    """A 2-cell grid (relu, tanh) x 1 seed, trained to the end."""
    sweep = lab.submit_grid({"activation": ["relu", "tanh"]}, seeds=[0], base=TINY, name="pair")
    runs = lab.wait(sweep, progress=False, timeout=240)
    assert [r.status for r in runs] == ["succeeded"] * 2, served.logs()
    return sweep, runs


@pytest.mark.integration
def test_grid_wait_and_metrics_into_pandas(lab, finished):
    sweep, runs = finished
    assert len(sweep.run_ids) == 2 and sweep.grid == {"activation": ["relu", "tanh"]}
    assert all(r.final_test_acc is not None for r in runs)
    frame = lab.metrics(sweep).to_pandas()
    assert len(frame) == 2 * TINY["epochs"]  # long: one row per run and epoch
    best = frame.groupby("activation")["test_acc"].max()
    assert sorted(best.index) == ["relu", "tanh"]
    assert (best > 0).all()
    listed = lab.runs(sweep=sweep, status="succeeded").to_pandas()
    assert sorted(listed["run_id"]) == sorted(sweep.run_ids)
    assert set(listed["activation"]) == {"relu", "tanh"}


@pytest.mark.integration
def test_tags_notes_and_search(lab, finished):
    _, runs = finished
    run = lab.tag(runs[0], "Baseline", "keep")
    assert run.tags == ["baseline", "keep"]
    assert lab.note(run, "first try").note == "first try"
    assert [r.id for r in lab.runs(tag="baseline")] == [run.id]
    assert run.id in [r.id for r in lab.runs(q="first")]


@pytest.mark.integration
def test_download_checkpoint(lab, finished, tmp_path):
    _, runs = finished
    path = lab.download_checkpoint(runs[0], tmp_path)
    assert path.parent == tmp_path and path.name.startswith(f"run-{runs[0].id}-")
    assert path.stat().st_size > 1000
    assert not list(tmp_path.glob("*.part"))
    named = lab.download_checkpoint(runs[1].id, tmp_path / "tanh.pt")
    assert named.read_bytes()[:2] == b"PK"  # torch.save's zip format


@pytest.mark.integration
def test_cancel_a_queued_run_then_retry_and_delete(lab, served):
    blocker = lab.submit({**TINY, "epochs": 1000}, name="blocker")
    queued = lab.submit(TINY)
    cancelled = lab.cancel(queued)
    assert cancelled.status == "cancelled" and cancelled.raw["started_at"] is None
    with pytest.raises(resnet_lab.Conflict, match="not cancellable"):
        lab.cancel(queued)
    with pytest.raises(resnet_lab.WaitTimeout):
        lab.wait(blocker, progress=False, timeout=1)
    lab.cancel(blocker)
    assert lab.wait(blocker, progress=False, timeout=60)[0].status == "cancelled"

    # Back in the queue; the server's idle worker may have taken it before the answer.
    assert lab.retry(queued).status in ("queued", "running")
    assert lab.wait(queued, progress=False, timeout=120)[0].status == "succeeded", served.logs()
    lab.delete(queued)
    with pytest.raises(resnet_lab.NotFound):
        lab.run(queued)


@pytest.mark.integration
def test_refusals_carry_the_api_message(lab, served):
    with pytest.raises(resnet_lab.ValidationError) as caught:
        lab.submit(dataset="digits", width=1000)
    assert caught.value.field == "width" and "width" in str(caught.value)
    with pytest.raises(resnet_lab.ValidationError) as caught:
        lab.submit_grid({"activation": ["relu", "swish"]}, base=TINY)
    assert caught.value.field.startswith("grid") and "activation" in str(caught.value)
    with pytest.raises(resnet_lab.NotFound, match="not found"):
        lab.run(10**9)
    with resnet_lab.Lab(served.url, token="wrong") as intruder:
        with pytest.raises(resnet_lab.AuthError):
            intruder.submit(TINY)


@pytest.mark.integration
def test_url_and_token_come_from_the_environment(served, monkeypatch):
    monkeypatch.setenv("RESNET_LAB_URL", served.url)
    monkeypatch.setenv("API_TOKEN", served.token)
    with resnet_lab.Lab() as env_lab:
        assert env_lab.url == served.url
        assert "final" in env_lab.statuses()


def test_the_client_reads_every_epoch_field_the_server_serves_in_its_order():
    from core.db import METRIC_FIELDS
    from resnet_lab.models import EPOCH_FIELDS

    assert EPOCH_FIELDS == METRIC_FIELDS
