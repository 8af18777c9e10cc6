"""The dashboard in a real browser against a real server and worker.

Submits a 2×2 grid of tiny `digits` runs through the New grid form, watches a run page's
accuracy chart gain points without a reload, waits for the grid page's heatmap to fill its
four cells, tags a run and filters on the tag, keeps a column choice across a reload,
compares the runs grouped by activation with ± std bands, reads the endpoints off /docs,
checks the grid page at 1920 px has nothing cut off, and checks that no request left the
machine and that the console stayed clean (a CSP violation is a console error).
Screenshots of every page at 390, 1400, 1600 and 1920 px land in artifacts/screenshots/.

Run alone: `.venv/bin/pytest tests/browser -v` (about a minute on two cores).
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

# A 2×2 grid small enough to train four times in well under a minute on a laptop CPU.
BASE = {"width": "4", "epochs": "3", "batch_size": "64", "train_limit": "256", "test_limit": "128"}
EPOCHS = 3

POINTS_JS = """(sel) => {
  const div = document.querySelector(sel);
  if (!div || !div.data) return -1;
  return div.data.reduce((n, t) => n + ((t.x && t.x.length) || 0), 0);
}"""

HEATMAP_CELLS_JS = """() => [...document.querySelectorAll('.heatmap-panel')]
  .filter((div) => div.data)
  .reduce((n, div) => n + div.data[0].z.flat().filter((v) => v !== null).length, 0)"""

OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"

# How far a table sticks out: past its scroll box, or past the window's right edge.
TABLE_CUT_JS = """(sel) => {
  const table = document.querySelector(sel);
  const box = table.closest('.table-wrap');
  return Math.max(box.scrollWidth - box.clientWidth,
                  table.getBoundingClientRect().right - window.innerWidth);
}"""

PARCOORDS = "#compare-parcoords .scatterlayer"

BAND_GROUPS_JS = """() => {
  const div = document.querySelector('#compare-curves');
  return div && div.data ? div.data.filter((t) => t.fill === 'tonexty').length : -1;
}"""


def points(page, selector: str) -> int:
    return page.evaluate(POINTS_JS, selector)


def wait_js(page, expression: str, timeout: float, explain) -> None:
    """page.wait_for_function, failing with `explain()` (the state of things) on a timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out waiting for {expression}: {explain()}") from None


def shot(page, directory, name: str) -> None:
    page.screenshot(path=directory / f"{name}.png", full_page=True)


@pytest.mark.timeout(500)
def test_grid_submitted_in_the_browser_trains_live_and_stays_offline(
    server, page, watch, screenshots
):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    # The one error the test provokes on purpose: the bad New run form (422 from POST /api/runs).
    watch.expected_responses.add((422, "/api/runs"))

    # --- Runs: the empty state says what to do first
    page.goto(server.url + "/")
    expect(page.locator("#runs-empty")).to_be_visible()
    expect(page.locator("#runs-empty")).to_contain_text("reproduce the report's grid")
    shot(page, screenshots, "runs-empty")

    # --- New run: a bad value is shown beside its field, and what was typed stays
    page.goto(server.url + "/runs/new")
    expect(page.locator("#run-epochs")).to_have_value("200")  # the schema's default
    page.fill("#run-epochs", "many")
    page.fill("#run-lr_ratio", "2:1")
    page.click("#submit")
    expect(page.locator("#run-epochs-err")).to_be_visible()
    expect(page.locator("#run-lr_ratio-err")).to_be_visible()
    expect(page.locator("#run-epochs")).to_have_value("many")
    expect(page.locator("#run-lr_ratio")).to_have_value("2:1")
    assert page.url.endswith("/runs/new")
    assert server.get("/api/runs")["total"] == 0
    shot(page, screenshots, "new-run")

    # --- New grid: the report's grid in one click, then our own 2×2 grid
    page.goto(server.url + "/sweeps/new")
    page.click("#report-grid")
    expect(page.locator("#estimate-runs")).to_have_attribute("data-runs", "36")
    for box in page.locator("#factors input[type=checkbox]").all():
        box.uncheck()
    page.check("input[name=factor-activation][value=relu]")
    page.check("input[name=factor-activation][value=tanh]")
    page.check("input[name=factor-lr_ratio][value='2:1:1']")
    page.check("input[name=factor-lr_ratio][value='5:4:1']")
    page.check("input[name=factor-augmentation][value=none]")
    page.click("#base-box > summary")
    page.select_option("#base-dataset", "digits")
    for name, value in BASE.items():
        page.fill(f"#base-{name}", value)
    page.fill("#sweep-seeds", "0")
    page.fill("#sweep-name", "browser <2×2>")
    expect(page.locator("#estimate-runs")).to_have_attribute("data-runs", "4")
    # nothing timed yet on this server: no made-up figure
    expect(page.locator("#estimate-time")).to_have_text("not known yet")
    expect(page.locator("#base-dataset-ready")).to_contain_text("ready")
    shot(page, screenshots, "new-grid")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/sweeps/\d+$"))
    sweep_id = int(page.url.rsplit("/", 1)[1])
    sweep = server.get(f"/api/sweeps/{sweep_id}")
    assert sweep["total_runs"] == 4
    assert sweep["base"]["dataset"] == "digits" and sweep["base"]["epochs"] == EPOCHS
    assert sorted(sweep["grid"]) == ["activation", "augmentation", "lr_ratio"]
    run_ids = sorted(sweep["run_ids"])

    # --- Grid page right after submitting: the status matrix shows every run
    expect(page.locator("#cells-table .chip")).to_have_count(4)
    expect(page.locator("#sweep-title")).to_contain_text("browser <2×2>")  # escaped, not markup

    # --- Run page: the last run of the grid is still queued; its chart grows without reload
    watched = run_ids[-1]
    page.goto(f"{server.url}/runs/{watched}")
    page.wait_for_function(f"({POINTS_JS})('#chart-acc') >= 0")
    page.evaluate("window.__noReload = true")
    before = points(page, "#chart-acc")
    assert before < 2 * EPOCHS, "the watched run finished before its page opened"

    def state() -> str:
        return (
            f"chart points {points(page, '#chart-acc')}, run {server.get(f'/api/runs/{watched}')}, "
            f"metrics {server.get(f'/api/runs/{watched}/metrics')}, console {watch.console_errors}"
            f"\n{server.logs()}"
        )

    wait_js(page, f"({POINTS_JS})('#chart-acc') > {before}", 180_000, state)
    wait_js(page, f"({POINTS_JS})('#chart-acc') === {2 * EPOCHS}", 120_000, state)
    expect(page.locator("#run-status .badge")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#result")).to_be_visible()
    page.wait_for_function(f"({POINTS_JS})('#chart-confusion') > 0")
    assert page.evaluate("window.__noReload === true"), "the run page reloaded itself"
    assert points(page, "#chart-lr") == EPOCHS
    expect(page.locator("#progress-text")).to_contain_text(f"epoch {EPOCHS} of {EPOCHS}")
    expect(page.locator("#run-actions a", has_text="Download checkpoint")).to_be_visible()
    shot(page, screenshots, "run")

    # --- Grid page: four heatmap cells, click one for its curves
    for run_id in run_ids:  # the watched run was last in the queue; the others are done
        deadline = time.monotonic() + 60
        while server.get(f"/api/runs/{run_id}")["status"] != "succeeded":
            assert time.monotonic() < deadline, f"run {run_id} did not succeed: {server.logs()}"
            time.sleep(0.5)
    page.goto(f"{server.url}/sweeps/{sweep_id}")
    page.wait_for_function(f"({HEATMAP_CELLS_JS})() === 4")
    expect(page.locator("#cells-table .chip.st-succeeded")).to_have_count(4)
    expect(page.locator("#paper-card")).to_be_hidden()  # digits: no report figures
    area = page.locator("#heatmap-0 .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.25)
    expect(page.locator("#cell-curves-card")).to_be_visible()
    page.wait_for_function(f"({POINTS_JS})('#cell-curves') === {2 * EPOCHS}")
    expect(page.locator("#sweep-actions a", has_text="Export CSV")).to_have_attribute(
        "href", f"/api/sweeps/{sweep_id}.csv"
    )
    page.wait_for_function("document.querySelectorAll('#marginals .chart').length === 3")
    page.mouse.move(0, 0)  # no hover label in the picture
    shot(page, screenshots, "grid")

    # --- Runs: select every run, compare them
    page.goto(server.url + "/")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(4)
    page.check("#select-page")
    expect(page.locator("#compare-btn")).to_have_text("Compare selected (4)")
    shot(page, screenshots, "runs")
    page.click("#compare-btn")
    page.wait_for_url(re.compile(r"/compare\?run_ids=[\d,]+$"))
    # two activations, two runs each: grouped by activation, a mean line and a band per value
    expect(page.locator("#group-by")).to_have_value("activation")
    page.wait_for_function(f"({BAND_GROUPS_JS})() === 2")
    # parallel coordinates are drawn once scrolled into view: a line per run, and the colour bar
    page.locator("#compare-parcoords").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('#compare-parcoords').data?.length === 5")
    names = page.evaluate("document.querySelector('#compare-curves').data.map((t) => t.name)")
    assert sum("ReLU (n=2)" in n or "tanh (n=2)" in n for n in names) == 2, names
    rows = page.locator("#diff-table tbody th").all_inner_texts()
    assert "activation" in rows and "lr_ratio" in rows and "epochs" not in rows
    shared = page.locator("#shared-table tbody th").all_inner_texts()
    assert "epochs" in shared and "activation" not in shared
    # one line per run: four curves, none hidden under another
    page.select_option("#group-by", "")
    page.wait_for_function("document.querySelector('#compare-curves').data?.length === 4")
    page.select_option("#metric", "test_loss")
    page.check("#log-y")
    page.wait_for_function("document.querySelector('#compare-curves').layout.yaxis.type === 'log'")
    page.select_option("#group-by", "activation")
    page.select_option("#metric", "test_acc")
    page.uncheck("#log-y")
    page.wait_for_function(f"({BAND_GROUPS_JS})() === 2")
    shot(page, screenshots, "compare")

    # --- Grids list: each grid's best cell
    page.goto(server.url + "/sweeps")
    row = page.locator(f"#sweeps-body tr[data-sweep='{sweep_id}']")
    expect(row).to_contain_text("4 succeeded")
    best = server.get(f"/api/sweeps/{sweep_id}")["best"]
    expect(row.locator("td.best strong")).to_have_text(f"{best['mean'] * 100:.2f}%")
    shot(page, screenshots, "grids")

    # --- A tag added on the run page, then filtered on in the runs list
    tagged = run_ids[0]
    page.goto(f"{server.url}/runs/{tagged}")
    page.fill("#run-name", "first of the grid")
    page.fill("#run-tags", "Baseline, browser-test")
    page.fill("#run-note-text", "tagged by the browser test")
    page.click("#notes-save")
    expect(page.locator("#notes-status")).to_have_text("Saved.")
    expect(page.locator("#run-tags-head .tag")).to_have_text(["baseline", "browser-test"])
    assert server.get(f"/api/runs/{tagged}")["tags"] == ["baseline", "browser-test"]
    page.goto(server.url + "/")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(4)
    page.fill("#filter-tag", "baseline")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(1)
    expect(page.locator(f"#runs-body tr[data-run='{tagged}']")).to_contain_text("first of the grid")
    assert "tag=baseline" in page.url
    page.fill("#filter-tag", "")
    page.wait_for_function("!location.search.includes('tag=')")
    page.fill("#filter-q", "first of")
    page.wait_for_function("location.search.includes('q=first')")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(1)
    page.click("#clear-filters")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(4)

    # --- A column choice survives a reload: width shown, dataset hidden
    page.click("#columns-box > summary")
    page.check("#col-config-width")
    page.uncheck("#col-dataset")
    expect(page.locator("#runs-head th.c-config-width")).to_have_count(1)
    page.reload()
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(4)
    expect(page.locator("#runs-head th.c-config-width")).to_have_count(1)
    expect(page.locator("#runs-head th.c-dataset")).to_have_count(0)
    expect(page.locator(f"#runs-body tr[data-run='{tagged}'] td.c-config-width")).to_have_text("4")
    page.click("#columns-box > summary")
    page.click("#cols-reset")
    expect(page.locator("#runs-head th.c-dataset")).to_have_count(1)

    # --- /docs: Swagger UI, served by the app, lists the endpoints
    page.goto(server.url + "/docs")
    endpoint = page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}")
    expect(endpoint.first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/api/runs", "/api/sweeps", "/api/statuses", "/api/datasets"} <= set(paths), paths
    expect(page.locator(".opblock-patch .opblock-summary-path")).to_have_text("/api/runs/{run_id}")
    shot(page, screenshots, "docs")

    # --- The grid page at 1920 px: nothing cut off, the cells table ends on screen
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{server.url}/sweeps/{sweep_id}")
    page.wait_for_function(f"({HEATMAP_CELLS_JS})() === 4")
    expect(page.locator("#cells-table .chip.st-succeeded")).to_have_count(4)
    assert page.evaluate(OVERFLOW_JS) <= 0
    assert page.evaluate(TABLE_CUT_JS, "#cells-table") <= 0
    page.goto(server.url + "/")
    expect(page.locator("#runs-body tr[data-run]")).to_have_count(4)
    assert page.evaluate(TABLE_CUT_JS, "#runs-table") <= 0, "the runs table is cut off at 1920 px"
    page.set_viewport_size({"width": 1280, "height": 900})

    # --- New run: a valid form goes to the new run's page
    page.goto(server.url + "/runs/new")
    page.click("#fill-smoke")
    page.fill("#run-epochs", "1")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id not in run_ids
    expect(page.locator("#run-status .badge")).to_have_text(re.compile("queued|running|succeeded"))
    assert server.get(f"/api/runs/{new_id}")["config"]["dataset"] == "digits"

    # --- Every page at a phone's width and three desktop widths: none wider than the screen
    ids = ",".join(map(str, run_ids))
    for width in (390, 1400, 1600, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        for path, name, ready in [
            ("/", "runs", "#runs-body tr[data-run]"),
            (f"/sweeps/{sweep_id}", "grid", "#heatmap-0 .nsewdrag"),
            (f"/runs/{watched}", "run", "#chart-confusion .nsewdrag"),
            ("/sweeps/new", "new-grid", "#factors input"),
            (f"/compare?run_ids={ids}&group=activation", "compare-grouped", PARCOORDS),
            ("/docs", "docs", ".opblock"),
        ]:
            page.goto(server.url + path)
            if ready == PARCOORDS:  # drawn once scrolled into view
                page.locator("#compare-parcoords").scroll_into_view_if_needed()
            expect(page.locator(ready).first).to_be_visible()
            assert page.evaluate(OVERFLOW_JS) <= 0, f"{path} is wider than a {width}px screen"
            page.mouse.move(0, 0)  # no hover label in the picture
            shot(page, screenshots, f"{name}-{width}")

    # --- Nothing left the machine, and the console stayed clean
    assert not watch.foreign_requests(), watch.foreign_requests()
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors
    assert any(f"/api/runs/{watched}/events?after_epoch=" in u for u in watch.requests)
