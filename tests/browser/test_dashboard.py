"""The dashboard in a real browser against a real server and worker, one test per page or flow.

The runs list's empty state; the New run form's errors and its way to a new run's page; a
2×2 grid submitted through the New grid form; and, on a 2×2 grid of tiny `digits` runs
submitted through the API: a run page's accuracy chart gaining points without a reload, the
grid page's heatmap and a cell's curves, the runs compared grouped by activation with ± std
bands, the grids list's best cell, a tag filtered on, a column choice kept across a reload,
the grid page at 1920 px with nothing cut off, and every page at a phone's and three desktop
widths. /docs lists the endpoints. After every test: no request left the machine and the
console stayed clean (a CSP violation is a console error). Screenshots of every page at 390,
1400, 1600 and 1920 px land in artifacts/screenshots/.

Run alone: `.venv/bin/pytest tests/browser -v` (about a minute on two cores).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.browser

# A 2×2 grid small enough to train four times in well under a minute on a laptop CPU.
BASE = {"width": 4, "epochs": 3, "batch_size": 64, "train_limit": 256, "test_limit": 128}
EPOCHS = BASE["epochs"]
GRID = {"activation": ["relu", "tanh"], "lr_ratio": ["2:1:1", "5:4:1"], "augmentation": ["none"]}
# The form's grid is at a width that nothing here trains: its time estimate has no measured
# speed to go on, whichever tests ran before it.
FORM_WIDTH = 5

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

ROWS = "#runs-body tr[data-run]"


@dataclass(frozen=True)
class Grid:
    id: int
    run_ids: list[int]  # in submission order: the worker trains the last one last


@pytest.fixture(scope="module")
def expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    yield expect
    expect.set_options(timeout=None)  # Playwright's default again for the next module


@pytest.fixture(autouse=True)
def stays_offline_and_clean(watch):
    """Checked after each test, once its page is closed: nothing left the machine, the
    console stayed clean."""
    yield
    assert not watch.foreign_requests(), watch.foreign_requests()
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors


@pytest.fixture(scope="module")
def grid(server) -> Grid:
    """The 2×2 grid, submitted through the API and not waited for. The run page test watches
    its last run train from the queue, so it comes first of the tests that use this grid."""
    sweep = server.post(
        "/api/sweeps",
        {"name": "browser 2×2", "base": {"dataset": "digits", **BASE}, "grid": GRID, "seeds": [0]},
    )
    return Grid(sweep["id"], sorted(sweep["run_ids"]))


@pytest.fixture(scope="module")
def trained_grid(server, grid) -> Grid:
    """The 2×2 grid once every run of it has succeeded."""

    def succeeded() -> bool:
        runs = server.get(f"/api/runs?sweep_id={grid.id}&status=succeeded")
        return runs["total"] == len(grid.run_ids)

    try:
        wait_for(succeeded, 240, f"the runs of grid {grid.id} to succeed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {server.logs()}") from None
    return grid


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


def test_runs_list_says_what_to_do_first_when_empty(server, page, expect, screenshots):
    """First in the module: the server has no run yet."""
    page.goto(server.url + "/")
    expect(page.locator("#runs-empty")).to_be_visible()
    expect(page.locator("#runs-empty")).to_contain_text("reproduce the report's grid")
    shot(page, screenshots, "runs-empty")


def test_new_run_form_shows_bad_values_beside_their_fields(
    server, page, watch, expect, screenshots
):
    # The errors the test provokes on purpose: 422 from POST /api/runs, and from the time
    # estimate that the form asks for in the background once typing pauses.
    watch.expected_responses.update({(422, "/api/runs"), (422, "/api/sweeps/estimate")})
    runs_before = server.get("/api/runs")["total"]
    page.goto(server.url + "/runs/new")
    expect(page.locator("#run-epochs")).to_have_value("200")  # the schema's default
    page.fill("#run-epochs", "many")
    page.fill("#run-lr_ratio", "2:1")
    page.click("#submit")
    expect(page.locator("#run-epochs-err")).to_be_visible()
    expect(page.locator("#run-lr_ratio-err")).to_be_visible()
    # what was typed stays, and no run was made
    expect(page.locator("#run-epochs")).to_have_value("many")
    expect(page.locator("#run-lr_ratio")).to_have_value("2:1")
    assert page.url.endswith("/runs/new")
    assert server.get("/api/runs")["total"] == runs_before
    shot(page, screenshots, "new-run")


def test_grid_form_submits_a_grid(server, page, expect, screenshots):
    # the report's grid in one click, then our own 2×2 grid
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
    for name, value in {**BASE, "width": FORM_WIDTH}.items():
        page.fill(f"#base-{name}", str(value))
    page.fill("#sweep-seeds", "0")
    page.fill("#sweep-name", "browser <2×2>")
    expect(page.locator("#estimate-runs")).to_have_attribute("data-runs", "4")
    # nothing timed yet at this width: no made-up figure
    expect(page.locator("#estimate-time")).to_have_text("not known yet")
    expect(page.locator("#base-dataset-ready")).to_contain_text("ready")
    shot(page, screenshots, "new-grid")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/sweeps/\d+$"))
    sweep_id = int(page.url.rsplit("/", 1)[1])
    # The other tests train a grid of their own: this one's runs are not needed.
    server.post(f"/api/sweeps/{sweep_id}/cancel")
    sweep = server.get(f"/api/sweeps/{sweep_id}")
    assert sweep["total_runs"] == 4
    assert sweep["base"]["dataset"] == "digits" and sweep["base"]["epochs"] == EPOCHS
    assert sweep["base"]["width"] == FORM_WIDTH
    assert sorted(sweep["grid"]) == ["activation", "augmentation", "lr_ratio"]
    # the grid page right after submitting: the status matrix shows every run
    expect(page.locator("#cells-table .chip")).to_have_count(4)
    expect(page.locator("#sweep-title")).to_contain_text("browser <2×2>")  # escaped, not markup


@pytest.mark.timeout(500)
def test_run_page_draws_its_curves_live(server, grid, page, watch, expect, screenshots):
    """The last run of the grid is still queued; its chart grows without a reload."""
    watched = grid.run_ids[-1]
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
    assert any(f"/api/runs/{watched}/events?after_epoch=" in u for u in watch.requests)


def test_grid_page_draws_the_heatmap_and_a_cells_curves(
    server, trained_grid, page, expect, screenshots
):
    page.goto(f"{server.url}/sweeps/{trained_grid.id}")
    page.wait_for_function(f"({HEATMAP_CELLS_JS})() === 4")
    expect(page.locator("#cells-table .chip.st-succeeded")).to_have_count(4)
    expect(page.locator("#paper-card")).to_be_hidden()  # digits: no report figures
    area = page.locator("#heatmap-0 .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.25)
    expect(page.locator("#cell-curves-card")).to_be_visible()
    page.wait_for_function(f"({POINTS_JS})('#cell-curves') === {2 * EPOCHS}")
    expect(page.locator("#sweep-actions a", has_text="Export CSV")).to_have_attribute(
        "href", f"/api/sweeps/{trained_grid.id}.csv"
    )
    page.wait_for_function("document.querySelectorAll('#marginals .chart').length === 3")
    page.mouse.move(0, 0)  # no hover label in the picture
    shot(page, screenshots, "grid")


def test_runs_selected_in_the_list_are_compared(server, trained_grid, page, expect, screenshots):
    page.goto(f"{server.url}/?sweep_id={trained_grid.id}")
    expect(page.locator(ROWS)).to_have_count(4)
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


def test_grids_list_shows_each_grids_best_cell(server, trained_grid, page, expect, screenshots):
    page.goto(server.url + "/sweeps")
    row = page.locator(f"#sweeps-body tr[data-sweep='{trained_grid.id}']")
    expect(row).to_contain_text("4 succeeded")
    best = server.get(f"/api/sweeps/{trained_grid.id}")["best"]
    expect(row.locator("td.best strong")).to_have_text(f"{best['mean'] * 100:.2f}%")
    shot(page, screenshots, "grids")


def test_tag_added_on_the_run_page_filters_the_runs_list(server, trained_grid, page, expect):
    tagged = trained_grid.run_ids[0]
    page.goto(f"{server.url}/runs/{tagged}")
    page.fill("#run-name", "first of the grid")
    page.fill("#run-tags", "Baseline, browser-test")
    page.fill("#run-note-text", "tagged by the browser test")
    page.click("#notes-save")
    expect(page.locator("#notes-status")).to_have_text("Saved.")
    expect(page.locator("#run-tags-head .tag")).to_have_text(["baseline", "browser-test"])
    assert server.get(f"/api/runs/{tagged}")["tags"] == ["baseline", "browser-test"]
    every_run = server.get("/api/runs")["total"]
    page.goto(server.url + "/")
    expect(page.locator(ROWS)).to_have_count(every_run)
    page.fill("#filter-tag", "baseline")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(f"#runs-body tr[data-run='{tagged}']")).to_contain_text("first of the grid")
    assert "tag=baseline" in page.url
    page.fill("#filter-tag", "")
    page.wait_for_function("!location.search.includes('tag=')")
    page.fill("#filter-q", "first of")
    page.wait_for_function("location.search.includes('q=first')")
    expect(page.locator(ROWS)).to_have_count(1)
    page.click("#clear-filters")
    expect(page.locator(ROWS)).to_have_count(every_run)


def test_column_choice_survives_a_reload(server, trained_grid, page, expect):
    """Width shown, dataset hidden, then the default columns back."""
    page.goto(f"{server.url}/?sweep_id={trained_grid.id}")
    expect(page.locator(ROWS)).to_have_count(4)
    page.click("#columns-box > summary")
    page.check("#col-config-width")
    page.uncheck("#col-dataset")
    expect(page.locator("#runs-head th.c-config-width")).to_have_count(1)
    page.reload()
    expect(page.locator(ROWS)).to_have_count(4)
    expect(page.locator("#runs-head th.c-config-width")).to_have_count(1)
    expect(page.locator("#runs-head th.c-dataset")).to_have_count(0)
    first = f"#runs-body tr[data-run='{trained_grid.run_ids[0]}'] td.c-config-width"
    expect(page.locator(first)).to_have_text(str(BASE["width"]))
    page.click("#columns-box > summary")
    page.click("#cols-reset")
    expect(page.locator("#runs-head th.c-dataset")).to_have_count(1)


def test_docs_list_the_endpoints(server, page, expect, screenshots):
    """Swagger UI, served by the app."""
    page.goto(server.url + "/docs")
    endpoint = page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}")
    expect(endpoint.first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/api/runs", "/api/sweeps", "/api/statuses", "/api/datasets"} <= set(paths), paths
    expect(page.locator(".opblock-patch .opblock-summary-path")).to_have_text("/api/runs/{run_id}")
    shot(page, screenshots, "docs")


def test_grid_page_at_1920_px_has_nothing_cut_off(server, trained_grid, page, expect):
    """The cells table and the runs table end on screen."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{server.url}/sweeps/{trained_grid.id}")
    page.wait_for_function(f"({HEATMAP_CELLS_JS})() === 4")
    expect(page.locator("#cells-table .chip.st-succeeded")).to_have_count(4)
    assert page.evaluate(OVERFLOW_JS) <= 0
    assert page.evaluate(TABLE_CUT_JS, "#cells-table") <= 0
    page.goto(f"{server.url}/?sweep_id={trained_grid.id}")
    expect(page.locator(ROWS)).to_have_count(4)
    assert page.evaluate(TABLE_CUT_JS, "#runs-table") <= 0, "the runs table is cut off at 1920 px"


def test_every_page_fits_a_phone_and_three_desktop_widths(
    server, trained_grid, page, expect, screenshots
):
    ids = ",".join(map(str, trained_grid.run_ids))
    for width in (390, 1400, 1600, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        for path, name, ready in [
            ("/", "runs", ROWS),
            (f"/sweeps/{trained_grid.id}", "grid", "#heatmap-0 .nsewdrag"),
            (f"/runs/{trained_grid.run_ids[-1]}", "run", "#chart-confusion .nsewdrag"),
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


def test_new_run_form_opens_the_new_runs_page(server, page, expect):
    """Last in the module: the worker trains this run after the grid's."""
    known = {r["id"] for r in server.get("/api/runs?limit=500")["items"]}
    page.goto(server.url + "/runs/new")
    page.click("#fill-smoke")
    page.fill("#run-epochs", "1")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id not in known
    expect(page.locator("#run-status .badge")).to_have_text(re.compile("queued|running|succeeded"))
    assert server.get(f"/api/runs/{new_id}")["config"]["dataset"] == "digits"
