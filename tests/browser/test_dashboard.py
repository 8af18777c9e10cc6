"""The dashboard in a real browser against a real server and worker.

Submits a 2×2 grid of tiny `digits` runs through the New grid form, watches a run page's
accuracy chart gain points without a reload, waits for the grid page's heatmap to fill its
four cells, compares the runs, and checks that no request left the machine and that the
console stayed clean. Screenshots of every page land in artifacts/screenshots/.

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


@pytest.mark.timeout(280)
def test_grid_submitted_in_the_browser_trains_live_and_stays_offline(
    server, page, watch, screenshots
):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    started = time.monotonic()
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
    expect(page.locator("#estimate-time")).to_be_visible()
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
    page.wait_for_function(
        "document.querySelector('#compare-curves').data?.length === 4"
        " && document.querySelector('#compare-parcoords').data?.length === 1"
    )
    rows = page.locator("#diff-table tbody th").all_inner_texts()
    assert "activation" in rows and "lr_ratio" in rows and "epochs" not in rows
    shot(page, screenshots, "compare")

    # --- Grids list
    page.goto(server.url + "/sweeps")
    expect(page.locator(f"#sweeps-body tr[data-sweep='{sweep_id}']")).to_contain_text("4 succeeded")
    shot(page, screenshots, "grids")

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

    # --- Phone width: no page wider than the screen
    page.set_viewport_size({"width": 375, "height": 812})
    for path, name, ready in [
        ("/", "runs-phone", "#runs-body tr[data-run]"),
        (f"/sweeps/{sweep_id}", "grid-phone", "#heatmap-0 .nsewdrag"),
        (f"/runs/{watched}", "run-phone", "#chart-confusion .nsewdrag"),
        ("/sweeps/new", "new-grid-phone", "#factors input"),
        (f"/compare?run_ids={','.join(map(str, run_ids))}", "compare-phone", ".parcoords"),
    ]:
        page.goto(server.url + path)
        expect(page.locator(ready).first).to_be_visible()
        assert page.evaluate(OVERFLOW_JS) <= 0, f"{path} is wider than a 375px screen"
        shot(page, screenshots, name)

    # --- Nothing left the machine, and the console stayed clean
    assert not watch.foreign_requests(), watch.foreign_requests()
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors
    assert any(f"/api/runs/{watched}/events?after_epoch=" in u for u in watch.requests)
    assert time.monotonic() - started < 240
