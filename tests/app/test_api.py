"""The REST API over a real SQLite file, without workers (the queue is the SQLite broker)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from core import lifecycle
from core.config import get_settings
from core.db import Metric, Run, new_session
from core.store import open_store
from tests.conftest import TINY, epoch_row, record_epochs


def count_runs() -> int:
    with new_session() as session:
        return session.scalar(select(func.count(Run.id)))


def test_post_run_stores_validated_config_with_defaults(api):
    response = api.post("/api/runs", json={"activation": "tanh"})
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "queued"
    assert run["config"]["activation"] == "tanh"
    assert run["config"]["epochs"] == 200 and run["config"]["lr_ratio"] == "2:1:1"
    assert api.get(f"/api/runs/{run['id']}").json()["config"] == run["config"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lr_ratio": "2:1"}, "lr_ratio"),
        ({"lr_ratio": "0:1:1"}, "lr_ratio"),
        ({"activation": "gelu"}, "activation"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": "many"}, "epochs"),
        ({"lr": -1}, "lr"),
        ({"width": 10_000}, "width"),
        ({"colour": "red"}, "colour"),
        ({"augmentation": None}, "augmentation"),
    ],
)
def test_bad_config_is_refused_with_422_naming_the_field_and_nothing_stored(api, body, field):
    response = api.post("/api/runs", json=body)
    assert response.status_code == 422
    assert any(err["loc"][-1] == field for err in response.json()["detail"]), response.text
    assert count_runs() == 0


def test_unknown_run_is_404_and_non_numeric_id_is_422(api):
    assert api.get("/api/runs/12345").status_code == 404
    assert api.post("/api/runs/12345/cancel").status_code == 404
    assert api.get("/api/runs/abc").status_code == 422


def test_cancel_of_queued_run_is_immediate_and_second_cancel_is_409(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    assert api.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/api/runs/{run_id}/cancel").status_code == 409
    assert api.post(f"/api/runs/{run_id}/retry").json()["status"] == "queued"
    # Retrying a queued run re-sends its task (a lost broker message) and changes nothing.
    assert api.post(f"/api/runs/{run_id}/retry").json()["status"] == "queued"
    with new_session() as session:
        lifecycle.claim(session, run_id, "w", heartbeat_timeout=30)
    assert api.post(f"/api/runs/{run_id}/retry").status_code == 409  # running


def test_delete_is_refused_while_queued_and_removes_finished_runs_with_metrics(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    assert api.delete(f"/api/runs/{run_id}").status_code == 409
    owner = record_epochs(run_id, epoch_row(1, 0.5))
    assert api.delete(f"/api/runs/{run_id}").status_code == 409  # running
    with new_session() as session:
        lifecycle.fail(session, run_id, "test", owner)
    assert api.delete(f"/api/runs/{run_id}").status_code == 204
    assert api.get(f"/api/runs/{run_id}").status_code == 404
    with new_session() as session:
        assert session.scalar(select(func.count(Metric.id))) == 0


def test_recording_an_epoch_twice_keeps_one_row_with_the_latest_values(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, epoch_row(1, 0.3), epoch_row(1, 0.4), epoch_row(2, 0.2))
    epochs = api.get(f"/api/runs/{run_id}/metrics").json()["epochs"]
    assert [(e["epoch"], e["test_acc"]) for e in epochs] == [(1, 0.4), (2, 0.2)]
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["epochs_done"] == 2 and run["best_test_acc"] == 0.4 and run["best_epoch"] == 1


def test_runs_list_sorts_filters_and_paginates(api):
    ids = [
        api.post("/api/runs", json={**TINY, "activation": a}).json()["id"]
        for a in ("relu", "tanh", "relu", "sigmoid")
    ]
    for run_id, acc in zip(ids, (0.5, 0.9, 0.7, 0.1)):
        record_epochs(run_id, epoch_row(1, acc))
    page = api.get("/api/runs", params={"sort": "-best_test_acc", "limit": 2}).json()
    assert page["total"] == 4
    assert [r["id"] for r in page["items"]] == [ids[1], ids[2]]
    page = api.get("/api/runs", params={"sort": "-best_test_acc", "limit": 2, "offset": 2}).json()
    assert [r["id"] for r in page["items"]] == [ids[0], ids[3]]
    unfinished = api.post("/api/runs", json=TINY).json()["id"]
    for sort in ("best_test_acc", "-best_test_acc"):
        items = api.get("/api/runs", params={"sort": sort}).json()["items"]
        assert items[-1]["id"] == unfinished, sort  # no result yet: last either way
    api.post(f"/api/runs/{unfinished}/cancel")
    api.delete(f"/api/runs/{unfinished}")
    relu = api.get("/api/runs", params={"activation": "relu"}).json()
    assert {r["id"] for r in relu["items"]} == {ids[0], ids[2]}
    assert api.get("/api/runs", params={"sort": "nonsense"}).status_code == 422
    curves = api.get("/api/metrics", params={"run_ids": f"{ids[0]},{ids[1]},999"}).json()
    assert [c["run_id"] for c in curves["runs"]] == [ids[0], ids[1]]
    assert api.get("/api/metrics", params={"run_ids": "1,x"}).status_code == 422


def test_report_preset_creates_36_cells_times_seeds(api):
    response = api.post("/api/sweeps", json={"preset": "report", "seeds": [0, 1, 2]})
    assert response.status_code == 201
    sweep = response.json()
    assert len(sweep["run_ids"]) == 108
    summary = api.get(f"/api/sweeps/{sweep['id']}").json()
    assert len(summary["cells"]) == 36
    best = next(
        c
        for c in summary["cells"]
        if c["key"] == {"lr_ratio": "5:4:1", "activation": "relu", "augmentation": "crop_flip"}
    )
    assert best["paper_test_acc"] == pytest.approx(0.9514)
    assert summary["baseline"] == {
        "lr_ratio": "2:1:1",
        "activation": "relu",
        "augmentation": "crop_flip",
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"grid": {"activation": ["relu", "swish"]}}, "grid"),
        ({"grid": {"nonsense": [1]}}, "grid"),
        ({"grid": {"activation": []}}, "grid"),
        ({"base": {"epochs": -3}, "grid": {"activation": ["relu"]}}, "base"),
        ({"preset": "paper"}, "preset"),
        ({"grid": {"activation": ["relu"]}, "seeds": []}, "seeds"),
        ({"grid": {"width": list(range(1, 101)), "epochs": list(range(1, 101))}}, "grid"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_part_and_nothing_is_stored(api, body, where):
    response = api.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert any(where in map(str, err["loc"]) for err in response.json()["detail"]), response.text
    assert count_runs() == 0


def test_sweep_summary_pools_seeds_and_tests_against_the_baseline(api):
    body = {"base": TINY, "grid": {"activation": ["relu", "tanh"]}, "seeds": [0, 1, 2]}
    sweep = api.post("/api/sweeps", json=body).json()
    with new_session() as session:
        runs = session.scalars(select(Run).where(Run.sweep_id == sweep["id"])).all()
        for run, acc in zip(runs, (0.90, 0.91, 0.92, 0.50, 0.52, 0.51)):
            run.status, run.final_test_acc = "succeeded", acc
        session.commit()
    summary = api.get(f"/api/sweeps/{sweep['id']}", params={"baseline": "activation:relu"}).json()
    cells = {c["key"]["activation"]: c for c in summary["cells"]}
    assert cells["relu"]["is_baseline"] and cells["relu"]["n"] == 3
    assert cells["relu"]["mean"] == pytest.approx(0.91)
    assert cells["relu"]["std"] == pytest.approx(0.01)
    assert cells["tanh"]["diff_from_baseline"] == pytest.approx(0.51 - 0.91)
    assert cells["tanh"]["p_value"] < 0.001
    assert summary["progress"] == 1.0 and summary["counts"]["succeeded"] == 6
    assert api.get(f"/api/sweeps/{sweep['id']}", params={"baseline": "width:3"}).status_code == 422


def test_healthz_reports_database_and_broker(api):
    body = api.get("/healthz").json()
    assert body["ok"] and body["database"] and body["broker"]
    assert isinstance(body["db_connections_in_use"], int)


def test_cross_site_post_is_refused(api):
    response = api.post("/api/runs", json=TINY, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert count_runs() == 0


def test_estimate_assumes_no_speed_and_uses_the_speed_measured_for_the_same_width(api):
    body = {"base": {**TINY, "epochs": 10}, "grid": {"activation": ["relu", "tanh"]}}
    guess = api.post("/api/sweeps/estimate", json=body).json()
    assert guess["runs"] == 2 and guess["epochs"] == 20
    assert guess["images"] == 2 * 10 * (TINY["train_limit"] + TINY["test_limit"])
    assert guess["estimated_gpu_seconds"] is None  # nothing timed yet: no made-up figure
    assert "no run at width 4 timed yet" in guess["basis"][0]
    assert count_runs() == 0

    run_id = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, epoch_row(1, 0.5))  # 2 s per epoch
    measured = api.post("/api/sweeps/estimate", json=body).json()
    assert measured["basis"] == ["measured: 1 recent run at width 4"]
    # 256 training images per 2-second epoch (training and test pass) = 128 img/s
    assert measured["estimated_gpu_seconds"] == pytest.approx(20 * TINY["train_limit"] / 128)

    wider = {**body, "base": {**body["base"], "width": 8}}
    scaled = api.post("/api/sweeps/estimate", json=wider).json()
    assert "scaled to width 8" in scaled["basis"][0]
    assert scaled["estimated_gpu_seconds"] == pytest.approx(4 * measured["estimated_gpu_seconds"])


def test_first_epoch_eta_comes_from_the_measured_speed_of_the_same_width(api):
    timed = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(timed, epoch_row(1, 0.5))
    fresh = api.post("/api/runs", json=TINY).json()["id"]
    with new_session() as session:
        lifecycle.claim(session, fresh, "w", heartbeat_timeout=30)
    run = api.get(f"/api/runs/{fresh}").json()
    assert run["status"] == "running" and run["epochs_done"] == 0
    assert run["eta_seconds"] == pytest.approx(TINY["epochs"] * TINY["train_limit"] / 128)
    listed = {r["id"]: r for r in api.get("/api/runs").json()["items"]}
    assert listed[fresh]["eta_seconds"] == pytest.approx(run["eta_seconds"])
    assert listed[timed]["images_per_second"] == pytest.approx(100.0)


def test_name_tags_and_note_are_patched_searched_filtered_and_exported(api):
    a = api.post("/api/runs", json={**TINY, "activation": "tanh"}).json()["id"]
    b = api.post("/api/runs", json=TINY).json()["id"]
    tags = ["Baseline", "cpu_only", "baseline"]
    edit = {"name": "  first try ", "tags": tags, "note": "lr ok"}
    response = api.patch(f"/api/runs/{a}", json=edit)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["name"] == "first try" and run["note"] == "lr ok"
    assert run["tags"] == ["baseline", "cpu_only"]  # lower-cased, once each
    # only the keys sent change; null clears
    run = api.patch(f"/api/runs/{a}", json={"note": None}).json()
    assert run["name"] == "first try" and run["tags"] == ["baseline", "cpu_only"]
    assert run["note"] is None
    assert api.get(f"/api/runs/{b}").json()["tags"] == []

    ids = lambda **params: [r["id"] for r in api.get("/api/runs", params=params).json()["items"]]  # noqa: E731
    assert ids(tag="baseline") == [a]
    assert ids(tag="cpu_only") == [a]
    assert ids(tag="cpu") == []  # whole tags only, and "_" is no wildcard
    assert ids(tag="cpu%") == []
    assert ids(q="first") == [a]
    assert ids(q="TANH") == [a]  # config values, any case
    assert ids(q="digits") == [b, a]
    assert ids(q=f"#{b}") == [b]
    assert ids(q="first relu") == []  # every word must match
    assert ids(q="width=4 activation=tanh") == [a]
    assert ids(q="lr=0.1") == [b, a]

    csv_text = api.get("/api/runs.csv").text.splitlines()
    header = csv_text[0].split(",")
    assert header[:4] == ["run_id", "sweep_id", "name", "tags"] and header[-1] == "note"
    row = next(line for line in csv_text[1:] if line.startswith(f"{a},"))
    assert ",first try,baseline cpu_only," in row


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"tags": ["has space"]}, "tags"),
        ({"tags": ["<b>"]}, "tags"),
        ({"tags": ["x" * 41]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": "baseline"}, "tags"),
        ({"note": 5}, "note"),
        ({"status": "succeeded"}, "status"),
    ],
)
def test_bad_run_edits_are_422_naming_the_field_and_change_nothing(api, body, field):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    response = api.patch(f"/api/runs/{run_id}", json=body)
    assert response.status_code == 422, response.text
    assert any(field in map(str, err["loc"]) for err in response.json()["detail"]), response.text
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["name"] is None and run["tags"] == [] and run["status"] == "queued"


def test_epochs_download_as_csv(api):
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, epoch_row(1, 0.25), epoch_row(2, 0.5))
    response = api.get(f"/api/runs/{run_id}/metrics.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0].split(",") == ["epoch", "lr", "train_loss", "train_acc", "test_loss",
                                   "test_acc", "seconds", "images_per_second"]  # fmt: skip
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    assert api.get("/api/runs/999/metrics.csv").status_code == 404


def test_datasets_say_which_are_ready_before_anything_is_submitted(api, tmp_path):
    states = {d["dataset"]: d for d in api.get("/api/datasets").json()}
    assert states["digits"]["state"] == "ready"
    assert states["cifar10"]["state"] in ("ready", "download")
    assert set(states) == {"cifar10", "fashion_mnist", "digits"}


def test_sweep_summary_clips_intervals_names_the_best_cell_and_pools_on_request(api):
    body = {"base": TINY, "grid": {"activation": ["relu", "tanh"], "lr_ratio": ["2:1:1", "5:4:1"]},
            "seeds": [0, 1]}  # fmt: skip
    sweep = api.post("/api/sweeps", json=body).json()
    accs = {("relu", "2:1:1"): (0.99, 0.50), ("tanh", "5:4:1"): (0.97, 0.96)}
    with new_session() as session:
        for run in session.scalars(select(Run).where(Run.sweep_id == sweep["id"])):
            pair = accs.get((run.config["activation"], run.config["lr_ratio"]))
            if pair:
                run.status, run.final_test_acc = "succeeded", pair[run.config["seed"]]
        session.commit()
    summary = api.get(f"/api/sweeps/{sweep['id']}").json()
    cells = {(c["key"]["activation"], c["key"]["lr_ratio"]): c for c in summary["cells"]}
    wide = cells[("relu", "2:1:1")]
    assert wide["n"] == 2 and 0.0 <= wide["ci95"][0] and wide["ci95"][1] <= 1.0
    assert summary["best"] == {"key": {"activation": "tanh", "lr_ratio": "5:4:1"},
                               "mean": pytest.approx(0.965), "n": 2}  # fmt: skip
    listed = api.get("/api/sweeps").json()["items"][0]
    assert listed["best"]["key"] == {"activation": "tanh", "lr_ratio": "5:4:1"}

    pooled = api.get(f"/api/sweeps/{sweep['id']}/cells", params={"by": "activation"}).json()
    by_act = {c["key"]["activation"]: c for c in pooled["cells"]}
    assert by_act["relu"]["n"] == 2 and by_act["relu"]["mean"] == pytest.approx(0.745)
    assert by_act["tanh"]["n"] == 2 and len(by_act["tanh"]["run_ids"]) == 4
    bad = api.get(f"/api/sweeps/{sweep['id']}/cells", params={"by": "width"})
    assert bad.status_code == 422


def test_status_vocabulary_keeps_lost_runs_followed_not_final(api):
    statuses = api.get("/api/statuses").json()
    assert set(statuses["all"]) == {"queued", "running", "succeeded", "failed", "cancelled", "lost"}
    assert "lost" not in statuses["final"] and "lost" in statuses["changing"]
    assert "lost" in statuses["retryable"]
    assert set(statuses["final"]) | set(statuses["changing"]) == set(statuses["all"])
    assert not set(statuses["final"]) & set(statuses["changing"])


def _training_without_a_checkpoint_yet(api) -> int:
    """A run one epoch in, whose location the worker has recorded; no file written yet (a
    checkpoint is written at most every CHECKPOINT_SECONDS)."""
    run_id = api.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, epoch_row(1))
    location = open_store(get_settings()).location(run_id)
    with new_session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(checkpoint_path=location))
        session.commit()
    return run_id


def _checkpoint_answers(api, run_id: int) -> tuple[bool, bool, int]:
    """(has_checkpoint of the run, has_checkpoint in the list, status of the download)."""
    listed = {r["id"]: r for r in api.get("/api/runs").json()["items"]}
    return (
        api.get(f"/api/runs/{run_id}").json()["has_checkpoint"],
        listed[run_id]["has_checkpoint"],
        api.get(f"/api/runs/{run_id}/checkpoint").status_code,
    )


def test_has_checkpoint_is_true_exactly_when_the_checkpoint_downloads(api):
    run_id = _training_without_a_checkpoint_yet(api)
    assert _checkpoint_answers(api, run_id) == (False, False, 404)
    folder = open_store(get_settings()).pull(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.pt").write_bytes(b"weights")
    assert _checkpoint_answers(api, run_id) == (True, True, 200)


def test_has_checkpoint_of_one_run_asks_a_remote_store(make_service, s3_bucket):
    # Lists keep the database's hint with a URL RUNS_DIR: a request per run would cost more.
    api = make_service(None, RUNS_DIR=f"s3://{s3_bucket}/runs").client
    run_id = _training_without_a_checkpoint_yet(api)
    assert _checkpoint_answers(api, run_id) == (False, True, 404)
    store = open_store(get_settings())
    folder = store.pull(run_id)
    (folder / "last.pt").write_bytes(b"weights")
    store.push(run_id, folder)
    assert _checkpoint_answers(api, run_id) == (True, True, 200)


def test_a_run_folder_linked_out_of_runs_dir_has_no_checkpoint_to_show_or_serve(api, tmp_path):
    run_id = _training_without_a_checkpoint_yet(api)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "last.pt").write_bytes(b"not ours")
    runs = open_store(get_settings()).runs_dir
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"run-{run_id}").symlink_to(outside)
    assert _checkpoint_answers(api, run_id) == (False, False, 404)
