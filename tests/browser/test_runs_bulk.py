"""The runs page's bulk actions, shared views, CSV export and "Group & compare", in a real
browser against `resnet-lab serve` without a worker: queued runs stay queued, and the few
finished runs the group statistics need are finished by the test through core.lifecycle,
as a worker finishes them (claim, record an epoch, finish).

Selects five runs and tags and then cancels them, one request each, after a confirmation
that says how many; selects all 55 runs of a grid across two pages and tags them in one
request by filter; filters the table and picks columns, opens that view's URL in a fresh
browser (no saved column choice) and downloads its CSV: only the filtered runs, exactly
the chosen columns; then groups the filtered runs and draws the scatter. Screenshots land
in artifacts/screenshots/runs-bulk-*.png.
"""

from __future__ import annotations

import csv
import json
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from core import lifecycle
from core.db import make_engine
from tests.conftest import TINY
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult

pytestmark = pytest.mark.browser

ONE_EPOCH = {**TINY, "epochs": 1}
GRID_RUNS = 55  # more than a page of the table (50)
CHOSEN = ["tags", "status", "final_test_acc", "config.width"]
CSV_HEADER = ["run_id", "tags", "status", "final_test_acc", "width"]


@pytest.fixture(scope="module")
def serve_workers() -> int:
    return 0  # nothing trains: queued runs stay queued while the test acts on them


def post(server, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def finish(server, run_ids: list[int], accs: list[float]) -> None:
    """Finishes queued runs as a worker would, on the server's own database."""
    engine = make_engine(f"sqlite:///{server.home / 'resnet-lab.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            for run_id, acc in zip(run_ids, accs):
                owner = lifecycle.claim(session, run_id, "browser-test", heartbeat_timeout=3600)
                assert owner is not None, run_id
                epoch = EpochMetrics(epoch=1, lr=0.1, train_loss=1.0, train_acc=acc,
                                     test_loss=1.0, test_acc=acc, seconds=1.0,
                                     images_per_second=100.0)  # fmt: skip
                assert lifecycle.record_epoch(session, run_id, epoch, owner)
                result = RunResult(config=TrainConfig(**ONE_EPOCH), final_test_acc=acc,
                                   best_test_acc=acc, best_epoch=1)  # fmt: skip
                assert lifecycle.finish(session, run_id, result, owner)
    finally:
        engine.dispose()


def ids_of(server, **params) -> list[int]:
    query = "&".join(f"{k}={v}" for k, v in {**params, "limit": 500}.items())
    return [r["id"] for r in server.get(f"/api/runs?{query}")["items"]]


def shot(page, directory: Path, name: str) -> None:
    page.mouse.move(0, 0)  # no hover label in the picture
    page.screenshot(path=directory / f"{name}.png", full_page=True)


@pytest.mark.timeout(120)
def test_bulk_actions_shared_view_export_and_groups(server, browser, page, watch, screenshots):
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    # --- runs: 4 finished (2 relu, 2 tanh), 6 queued relu, a grid of 55 queued sigmoid runs
    done_relu = [post(server, "/api/runs", {**ONE_EPOCH, "activation": "relu"})["id"] for _ in "ab"]
    done_tanh = [post(server, "/api/runs", {**ONE_EPOCH, "activation": "tanh"})["id"] for _ in "ab"]
    finish(server, done_relu + done_tanh, [0.80, 0.84, 0.60, 0.64])
    queued = [
        post(server, "/api/runs", {**ONE_EPOCH, "activation": "relu"})["id"] for _ in range(6)
    ]
    sweep = post(
        server,
        "/api/sweeps",
        {"base": {**ONE_EPOCH, "activation": "sigmoid"}, "grid": {"width": [4]},
         "seeds": list(range(GRID_RUNS))},
    )  # fmt: skip
    assert sweep["total_runs"] == GRID_RUNS

    # --- five runs selected (from a view opened by its URL), tagged, then cancelled
    page.goto(f"{server.url}/?activation=relu&status=queued")
    rows = page.locator("#runs-body tr[data-run]")
    expect(rows).to_have_count(6)
    expect(page.locator("#filter-activation")).to_have_value("relu")
    picked, left = queued[:5], queued[5]
    for run_id in picked:
        page.check(f"#runs-body input[data-run='{run_id}']")
    expect(page.locator("#bulk-count")).to_have_text("5 runs selected")
    expect(page.locator("#select-matching")).to_be_hidden()  # not the whole page
    page.fill("#bulk-tag", "Batch-B")
    shot(page, screenshots, "runs-bulk-selection")

    page.click("#bulk-bar [data-bulk=tag]")
    expect(page.locator("#bulk-title")).to_have_text("Tag 5 runs with Batch-B?")
    page.click("#bulk-confirm")
    expect(page.locator("#bulk-done")).to_have_text("5 runs tagged.")
    page.click("#bulk-back")
    assert sorted(ids_of(server, tag="batch-b")) == sorted(picked)

    page.click("#bulk-bar [data-bulk=cancel]")
    expect(page.locator("#bulk-title")).to_have_text("Cancel 5 runs?")
    expect(page.locator("#bulk-confirm")).to_have_text("Cancel 5 runs")
    shot(page, screenshots, "runs-bulk-confirm")
    page.click("#bulk-confirm")
    expect(page.locator("#bulk-done")).to_have_text("5 runs cancelled.")
    shot(page, screenshots, "runs-bulk-outcome")
    page.click("#bulk-back")
    assert sorted(ids_of(server, status="cancelled", tag="batch-b")) == sorted(picked)
    assert ids_of(server, activation="relu", status="queued") == [left]
    expect(rows).to_have_count(1)  # the table (queued only) follows
    bulk_posts = [u for u in watch.requests if urlsplit(u).path == "/api/runs/bulk"]
    assert len(bulk_posts) == 2, bulk_posts  # one request per action

    # --- every run of the grid, across both pages, tagged in one request by filter
    page.goto(f"{server.url}/?sweep_id={sweep['id']}")
    expect(rows).to_have_count(50)
    expect(page.locator("#runs-count")).to_contain_text(f"of {GRID_RUNS} runs")
    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("50 runs selected")
    page.click("#select-matching")
    expect(page.locator("#bulk-count")).to_have_text(
        f"All {GRID_RUNS} runs matching the filters selected"
    )
    page.fill("#bulk-tag", "whole-grid")
    page.click("#bulk-bar [data-bulk=tag]")
    expect(page.locator("#bulk-title")).to_have_text(f"Tag {GRID_RUNS} runs with whole-grid?")
    page.click("#bulk-confirm")
    expect(page.locator("#bulk-done")).to_have_text(f"{GRID_RUNS} runs tagged.")
    page.click("#bulk-back")
    assert len(ids_of(server, tag="whole-grid")) == GRID_RUNS
    assert len([u for u in watch.requests if urlsplit(u).path == "/api/runs/bulk"]) == 3

    # --- a filtered view with chosen columns: in the URL, the same in a fresh browser
    page.goto(server.url + "/")
    expect(page.locator("#runs-count")).to_contain_text(f"of {10 + GRID_RUNS} runs")
    page.select_option("#filter-activation", "relu")
    expect(rows).to_have_count(8)
    page.click("#columns-box > summary")
    shown = page.eval_on_selector_all(
        "#columns-panel input[data-col]:checked", "(boxes) => boxes.map((b) => b.dataset.col)"
    )
    for key in shown:
        if key not in CHOSEN:  # the chooser is drawn again after each change
            page.uncheck(f"#columns-panel input[data-col='{key}']")
    page.check("#col-config-width")
    head = page.locator("#runs-head th")
    expect(head).to_have_count(len(CHOSEN) + 4)  # select, run id, phone summary, actions
    query = parse_qs(urlsplit(page.url).query)
    assert query["activation"] == ["relu"] and query["cols"] == [",".join(CHOSEN)]

    shared = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other = shared.new_page()
        other.goto(page.url)
        expect(other.locator("#runs-body tr[data-run]")).to_have_count(8)
        expect(other.locator("#runs-head th.c-config-width")).to_have_count(1)
        expect(other.locator("#runs-head th.c-dataset")).to_have_count(0)
    finally:
        shared.close()

    with page.expect_download() as download:
        page.click("#export-view")
    with open(download.value.path(), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == CSV_HEADER
    relu_ids = sorted(done_relu + queued, reverse=True)  # the table's order: newest first
    assert [int(row[0]) for row in table[1:]] == relu_ids
    by_id = {int(row[0]): row for row in table[1:]}
    assert by_id[picked[0]][1:3] == ["batch-b", "cancelled"]
    assert by_id[done_relu[1]][2:] == ["succeeded", "0.84", "4"]
    expect(page.locator("#export-all")).to_have_attribute("href", "/api/runs.csv")

    # --- Group & compare over the filtered runs
    page.click("#groups-box > summary")
    groups = page.locator("#groups-table tbody tr")
    expect(groups).to_have_count(1)
    expect(groups.first.locator(".g-runs")).to_have_text("8")
    expect(groups.first.locator(".g-n")).to_have_text("2")
    expect(groups.first.locator(".g-mean")).to_have_text("82.00%")
    page.select_option("#group-add", "status")
    expect(groups).to_have_count(3)
    expect(page.locator("#groups-table tr[data-group='relu|cancelled'] .g-runs")).to_have_text("5")
    expect(page.locator("#groups-table tr[data-group='relu|succeeded'] .g-n")).to_have_text("2")
    assert parse_qs(urlsplit(page.url).query)["groups"] == ["activation,status"]
    page.click("#clear-filters")  # every run: tanh and sigmoid groups appear
    expect(page.locator("#groups-table tr[data-group='tanh|succeeded'] .g-mean")).to_have_text(
        "62.00%"
    )
    page.wait_for_function(
        "document.querySelector('#scatter-chart').data?.[0]?.x.length === 4"
        " && document.querySelector('#groups-chart').data?.length > 0"
    )
    page.mouse.move(0, 0)
    page.locator("#groups-box").screenshot(path=screenshots / "runs-bulk-groups.png")

    assert not watch.foreign_requests(), watch.foreign_requests()
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors
