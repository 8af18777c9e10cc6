"""The pages at a phone's width (390 px) and at two desktop widths (1400 and 1920 px), measured
in the DOM of a real browser against `resnet-lab serve` (no worker: the test writes the runs'
outcomes and two workers' reports into the server's database, as workers would).

What would break: the runs table's default columns no longer fitting a 1400 px screen, a header
cell hidden under a sticky column, the first column not sticking, the table's own horizontal
scroll bar off screen; the grids list and the workers table cut off on a phone instead of
showing one card per row; parallel coordinates on a phone with axis titles on top of each other
or tick labels outside the chart. Screenshots land in artifacts/screenshots/, named
widths-<page>-<width>.png (widths-runs-1400.png, widths-sweeps-390.png,
widths-grid-parcoords-390.png, ...): test_dashboard has runs-1400.png and the like.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import lifecycle
from core.db import make_engine
from core.worker_registry import WorkerReport, worker_seen, worker_took
from tests.browser.conftest import chromium
from tests.conftest import TINY
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult

pytestmark = pytest.mark.browser

WIDTHS = [390, 1400, 1920]
HEIGHT = 900
ONE_EPOCH = {**TINY, "epochs": 1}
GPU_WORKER = "gpu-node-07.cluster.example.org:48213"
CPU_WORKER = "workstation-under-the-desk:1207"
# a score per activation, so that the lines of parallel coordinates spread
ACC = {"relu": 0.93, "leaky_relu": 0.935, "tanh": 0.90, "sigmoid": 0.80}


@pytest.fixture(scope="module")
def serve_workers() -> int:
    return 0  # the test settles every run itself


@dataclass
class Lab:
    report_grid: int
    mixed_grid: int
    compared: list[int]
    running: int  # the run the GPU worker trains


def post(server, path: str, body: dict, method: str = "POST") -> dict:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def settle(session: Session, run_id: int, worker: str, outcome: str, acc: float = 0.0) -> None:
    """Takes a queued run as `worker` would: claims it and records an epoch, then leaves it
    running, fails it, or finishes it with test accuracy `acc`."""
    owner = lifecycle.claim(session, run_id, worker, heartbeat_timeout=3600)
    assert owner is not None, run_id
    epoch = EpochMetrics(epoch=1, lr=0.1, train_loss=1 - acc, train_acc=acc, test_loss=1 - acc,
                         test_acc=acc, seconds=12.5, images_per_second=1234.0)  # fmt: skip
    assert lifecycle.record_epoch(session, run_id, epoch, owner)
    if outcome == "failed":
        assert lifecycle.fail(session, run_id, "CUDA error: out of memory", owner)
    elif outcome == "succeeded":
        result = RunResult(config=TrainConfig(**ONE_EPOCH), final_test_acc=acc,
                           best_test_acc=acc, best_epoch=1)  # fmt: skip
        assert lifecycle.finish(session, run_id, result, owner)


def report_workers(session: Session, running: int) -> None:
    """A GPU worker training `running` and an idle CPU worker report, as live workers do every
    recovery period (a report older than two periods is no longer listed as live)."""
    worker_seen(session, GPU_WORKER, WorkerReport(
        host="gpu-node-07.cluster.example.org", pid=48213, device_kind="cuda",
        device_name="NVIDIA H200", memory_used_bytes=61 * 2**30,
        memory_total_bytes=141 * 2**30, utilization=97.0, temperature_c=64.0))  # fmt: skip
    worker_took(session, GPU_WORKER, running)
    worker_seen(session, CPU_WORKER, WorkerReport(
        host="workstation-under-the-desk", pid=1207, device_kind="cpu",
        device_name="AMD EPYC 9654 96-Core Processor", cpu_threads=16,
        utilization=3.0))  # fmt: skip


def seed(server) -> Lab:
    """The report's 36 cells twice (two seeds), all succeeded; a 2 × 2 grid of three seeds in
    every state (8 succeeded, 2 failed, 1 running, 1 queued); three named, tagged single
    runs, queued; a GPU worker training the running run and an idle CPU worker."""
    report = post(server, "/api/sweeps", {
        "name": "The report's grid, two seeds", "preset": "report", "base": ONE_EPOCH,
        "seeds": [0, 1]})  # fmt: skip
    mixed = post(server, "/api/sweeps", {
        "name": "Activation × width, three seeds",
        "base": {**TINY, "dataset": "cifar10", "epochs": 30},
        "grid": {"activation": ["relu", "sigmoid"], "width": [4, 8]},
        "seeds": [0, 1, 2]})  # fmt: skip
    for i, (name, tags) in enumerate([("baseline ReLU, long schedule", ["baseline", "paper"]),
                                      ("sigmoid check", ["check"]), ("", [])]):  # fmt: skip
        run = post(server, "/api/runs", {**ONE_EPOCH, "dataset": "fashion_mnist", "seed": i,
                                         "augmentation": "crop_flip_blur_color"})  # fmt: skip
        if name:
            post(server, f"/api/runs/{run['id']}", {"name": name, "tags": tags}, method="PATCH")
    engine = make_engine(f"sqlite:///{server.home / 'resnet-lab.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            for run_id in report["run_ids"]:
                config = server.get(f"/api/runs/{run_id}")["config"]
                acc = ACC[config["activation"]] - 0.01 * config["seed"] - 0.002 * (run_id % 7)
                settle(session, run_id, CPU_WORKER, "succeeded", acc)
            outcomes = ["succeeded"] * 8 + ["failed"] * 2 + ["running"]  # the last one queued
            for run_id, outcome in zip(mixed["run_ids"], outcomes):
                settle(session, run_id, GPU_WORKER, outcome, 0.9)
            running = mixed["run_ids"][len(outcomes) - 1]
            report_workers(session, running)
    finally:
        engine.dispose()
    # runs of every activation and augmentation, two learning-rate ratios, both seeds
    compared = report["run_ids"][::5][:12]
    return Lab(report["id"], mixed["id"], compared, running)


@pytest.fixture(scope="module")
def browser():
    """Chromium with its scroll bars drawn, as on a desktop (Playwright hides them when
    headless): they take room from the runs table's box, and the screenshots show them."""
    with chromium(ignore_default_args=["--hide-scrollbars"]) as browser:
        yield browser


@pytest.fixture(scope="module")
def lab(server) -> Lab:
    return seed(server)


@pytest.fixture(scope="module")
def sized(server, browser):
    """open_at(width, path): a new page at that width on the server's `path`; one context per
    width, shared by the module's tests."""
    contexts = {}

    def open_at(width: int, path: str):
        if width not in contexts:
            # a phone's scroll bars are drawn over the page, taking no room
            phone = {"is_mobile": True, "has_touch": True} if width < 700 else {}
            contexts[width] = browser.new_context(
                viewport={"width": width, "height": HEIGHT}, locale="en-GB", **phone
            )
        page = contexts[width].new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto(server.url + path)
        return page

    yield open_at
    for context in contexts.values():
        context.close()


def shot(page, screenshots: Path, name: str, width: int, height: int | None = None) -> None:
    """The whole page, or its top `height` px (a phone's 50 runs are 8,000 px of cards), or
    what the window shows (height 0)."""
    page.mouse.move(0, 0)  # no hover label in the picture
    clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
    path = screenshots / f"widths-{name}-{width}.png"
    page.screenshot(path=path, full_page=height != 0, clip=clip)


def rect(page, selector: str) -> dict:
    return page.evaluate(
        """(s) => { const e = document.querySelector(s); const r = e.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height,
                scrollWidth: e.scrollWidth, clientWidth: e.clientWidth}; }""",
        selector,
    )


# Shown elements of `selector` whose content is wider than their box: cut off, or hidden
# behind an ellipsis ("8 succe…").
CUT = """(selector) => [...document.querySelectorAll(selector)]
  .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map((e) => `${e.className}: ${e.textContent.trim().slice(0, 40)}`)"""

# Shown elements of the page's main part whose right edge is beyond the window's.
OUTSIDE = """() => [...document.querySelectorAll("main *")]
  .filter((e) => e.offsetParent !== null
    && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}`).slice(0, 10)"""


def assert_nothing_cut(page, cells: str) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate(
        "document.documentElement.clientWidth"
    )
    assert page.evaluate(OUTSIDE) == []
    assert page.evaluate(CUT, cells) == []


def assert_cards(page, table: str) -> None:
    """One card per row: no header row; each row a block whose cells wrap inside it."""
    style = "(s) => getComputedStyle(document.querySelector(s)).display"
    assert page.evaluate(style, f"{table} thead") == "none"
    assert page.evaluate(style, f"{table} tbody tr") != "table-row"


# ------------------------------------------------------------------ the runs table

ROWS = "#runs-body tr[data-run]"
BOX = "#runs-panel .table-wrap"

# Header cells under a sticky column (select, id, actions) of the runs table, or cut.
HIDDEN_HEADERS = """() => {
  const sticky = [...document.querySelectorAll(
    "#runs-head th.c-select, #runs-head th.c-id, #runs-head th.c-actions")];
  const out = [];
  for (const th of document.querySelectorAll("#runs-head th")) {
    if (th.scrollWidth > th.clientWidth + 1) out.push(`${th.textContent} cut`);
    if (sticky.includes(th)) continue;
    const r = th.getBoundingClientRect();
    for (const s of sticky) {
      const q = s.getBoundingClientRect();
      if (r.left < q.right - 1 && r.right > q.left + 1)
        out.push(`${th.textContent} under ${s.className}`);
    }
  }
  return out;
}"""

# Images/s, the times and the worker as well: wider than a 1400 px screen.
MANY_COLUMNS = ",".join([
    "name", "tags", "status", "dataset", "activation", "lr_ratio", "augmentation", "seed",
    "sweep_id", "progress", "final_test_acc", "best_test_acc", "images_per_second",
    "seconds_per_epoch", "duration_seconds", "eta_seconds", "queued_at", "started_at",
    "finished_at", "worker",
])  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", [1400, 1920])
def test_runs_table_default_columns_fit(lab, sized, screenshots, width):
    from playwright.sync_api import expect

    page = sized(width, "/")
    expect(page.locator(ROWS)).to_have_count(50, timeout=15_000)
    shot(page, screenshots, "runs", width)
    box = rect(page, BOX)
    assert box["scrollWidth"] <= box["clientWidth"] + 1, box
    assert page.evaluate(HIDDEN_HEADERS) == []
    assert page.locator("#runs-head th.c-best_test_acc").inner_text().split() == ["Best", "acc."]
    assert page.errors == []


@pytest.mark.timeout(180)
def test_runs_table_scrolls_sideways_with_its_run_in_place(lab, sized, screenshots):
    from playwright.sync_api import expect

    page = sized(1400, f"/?cols={MANY_COLUMNS}")
    expect(page.locator(ROWS)).to_have_count(50, timeout=15_000)
    box = rect(page, BOX)
    assert box["scrollWidth"] > box["clientWidth"] + 100, "the columns fit: nothing to scroll"
    first_id = f"{ROWS}:first-child td.c-id"
    before = rect(page, first_id)
    name_before = rect(page, f"{ROWS}:first-child td.c-name")
    # the box has a sideways scroll bar at its bottom, and fits the window: scrolled to, the
    # whole box is on screen, its bar with it
    bar = page.locator(BOX).evaluate("(e) => e.offsetHeight - e.clientHeight - e.clientTop * 2")
    assert bar > 0
    page.locator(BOX).evaluate("(e) => e.scrollIntoView({block: 'end'})")
    box = rect(page, BOX)
    assert box["top"] >= 0 and box["bottom"] <= HEIGHT, box
    page.locator(BOX).evaluate("(e) => { e.scrollLeft = e.scrollWidth; e.scrollTop = 0; }")
    page.locator(BOX).evaluate("(e) => e.scrollIntoView({block: 'end'})")
    after = rect(page, first_id)
    assert after["left"] == pytest.approx(before["left"], abs=1)  # the run's id stays put
    assert rect(page, f"{ROWS}:first-child td.c-name")["left"] < name_before["left"] - 100
    # the last column is in full view beside the sticky actions
    last = rect(page, "#runs-head th.c-worker")
    actions = rect(page, "#runs-head th.c-actions")
    assert last["right"] <= actions["left"] + 1 and actions["right"] <= box["right"]
    shot(page, screenshots, "runs-scrolled", 1400, height=0)  # the box's bottom, its bar
    assert page.errors == []


@pytest.mark.timeout(180)
def test_runs_list_on_a_phone_is_cards(lab, sized, screenshots):
    from playwright.sync_api import expect

    page = sized(390, "/")
    expect(page.locator(ROWS)).to_have_count(50, timeout=15_000)
    shot(page, screenshots, "runs", 390, height=1800)
    assert_cards(page, "#runs-table")
    assert_nothing_cut(page, "#runs-table td, #runs-table .badge")
    assert page.errors == []


# ------------------------------------------------------------------ grids and workers


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", WIDTHS)
def test_grids_list(lab, sized, screenshots, width):
    from playwright.sync_api import expect

    page = sized(width, "/sweeps")
    expect(page.locator("#sweeps-body tr[data-sweep]")).to_have_count(2, timeout=15_000)
    mixed = page.locator(f"#sweeps-body tr[data-sweep='{lab.mixed_grid}']")
    expect(mixed.locator(".badge.st-succeeded")).to_have_text("8 succeeded")
    shot(page, screenshots, "sweeps", width)
    if width < 700:
        assert_cards(page, "#sweeps-table")
    assert_nothing_cut(page, "#sweeps-table td, #sweeps-table .badge")
    assert page.errors == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", WIDTHS)
def test_workers_table(lab, server, sized, screenshots, width):
    from playwright.sync_api import expect

    # Fresh reports: the tests before this one may have taken longer than a worker stays live.
    engine = make_engine(f"sqlite:///{server.home / 'resnet-lab.db'}")
    try:
        with Session(engine) as session:
            report_workers(session, lab.running)
    finally:
        engine.dispose()
    page = sized(width, "/workers")
    expect(page.locator("#workers-body tr[data-worker]")).to_have_count(2, timeout=15_000)
    expect(page.locator(f"#workers-body tr[data-worker='{GPU_WORKER}']")).to_contain_text(
        "NVIDIA H200"
    )
    shot(page, screenshots, "workers", width)
    if width < 700:
        assert_cards(page, "#workers-table")
    assert_nothing_cut(page, "#workers-table td, #workers-table .badge")
    assert page.errors == []


# ------------------------------------------------------------------ parallel coordinates

# Every text of a chart (axis titles, tick labels): those that overlap another, and those
# not wholly inside the chart's SVG (cut off at its edge).
CHART_TEXTS = """(selector) => {
  const div = document.querySelector(selector);
  const svg = div.querySelector("svg.main-svg").getBoundingClientRect();
  const texts = [...div.querySelectorAll("svg.main-svg text")]
    .filter((t) => t.textContent.trim() && !t.closest(".hoverlayer"))
    .map((t) => ({text: t.textContent, r: t.getBoundingClientRect()}));
  const overlaps = [];
  texts.forEach((a, i) => texts.slice(i + 1).forEach((b) => {
    if (a.r.left < b.r.right - 1 && b.r.left < a.r.right - 1
        && a.r.top < b.r.bottom - 1 && b.r.top < a.r.bottom - 1)
      overlaps.push(`${a.text} / ${b.text}`);
  }));
  const outside = texts.filter(({r}) => r.left < svg.left - 1 || r.right > svg.right + 1
    || r.top < svg.top - 1 || r.bottom > svg.bottom + 1).map(({text}) => text);
  return {count: texts.length, overlaps, outside};
}"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("chart", ["grid", "compare"])
def test_parcoords(lab, sized, screenshots, chart, width):
    if chart == "grid":
        page, selector = sized(width, f"/sweeps/{lab.report_grid}"), "#sweep-parcoords"
    else:
        ids = ",".join(map(str, lab.compared))
        page, selector = sized(width, f"/compare?run_ids={ids}"), "#compare-parcoords"
    page.locator(selector).scroll_into_view_if_needed()  # drawn once scrolled into view
    page.wait_for_function("(s) => document.querySelector(`${s} svg.main-svg text`)", arg=selector)
    page.locator(selector).screenshot(path=screenshots / f"widths-{chart}-parcoords-{width}.png")
    found = page.evaluate(CHART_TEXTS, selector)
    assert found["overlaps"] == [] and found["outside"] == [], found
    # five axes (three factors, the seed, accuracy), each with a title and its ticks
    assert found["count"] > 5 + 12
    assert page.errors == []
