"""The study report in one click, and offline: the issue's digits grid (2 activations x 2 LR
ratios x 2 augmentations x 3 seeds, runs finished by hand, one failed) is shown on its grid
page; a click on Report's HTML link downloads the file, which is then opened from disk in
Chromium with the network off. Every chart must be drawn by the plotly.js inside the file,
with the numbers the API gives, and nothing may be fetched from anywhere. The Markdown link
downloads the same report as text.

The app runs in this process (uvicorn in a thread, on the test's temporary database): no
worker, so nothing trains the runs the test finishes itself.

Run alone: `.venv/bin/pytest tests/browser/test_report_offline.py -v` (10-20 s on two
cores, most of it making the grid). Screenshots: artifacts/screenshots/report-control.png
(the grid page's Report links) and report-offline.png (the report opened offline).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.app.test_report import GRID, activation_matters
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import finished_grid, free_port, wait_for

pytestmark = pytest.mark.browser

# Per chart div: drawn by Plotly (its SVG and points), how many traces, and each trace's
# customdata (the unrounded numbers behind every point).
CHARTS_JS = """() => [...document.querySelectorAll('[data-chart]')].map((div) => ({
  id: div.id,
  svg: div.querySelectorAll('.main-svg').length,
  points: div.querySelectorAll('.scatterlayer .point').length,
  traces: div.data ? div.data.length : 0,
  customdata: div.data ? div.data.map((t) => t.customdata) : null,
}))"""


@pytest.fixture
def live(make_service) -> Iterator[tuple[object, str]]:
    """The app on a free loopback port, and a TestClient on the same database."""
    import uvicorn

    from app.main import create_app

    client = make_service(None).client
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning",
                            timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the app to listen")
        yield client, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_report_downloads_in_one_click_and_draws_every_chart_offline(live, browser, tmp_path):
    from playwright.sync_api import expect

    api, url = live
    sweep = finished_grid(api, GRID, activation_matters, fail={4: "CUDA out of memory"})
    sid = sweep["id"]
    effects = api.get(f"/api/sweeps/{sid}/effects").json()
    errors: list[str] = []

    # The grid page: one click on Report's HTML link, one on its Markdown link.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{url}/sweeps/{sid}")
        expect(page.locator("#anova-table tbody tr")).to_have_count(7, timeout=20_000)
        link = page.get_by_role("link", name="Report as HTML")
        expect(link).to_have_attribute(
            "href", f"/api/sweeps/{sid}/report.html?metric=final_test_acc"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#analysis-card").screenshot(path=SCREENSHOTS / "report-control.png")
        with page.expect_download() as download:
            link.click()
        assert download.value.suggested_filename == f"grid-{sid}-report.html"
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        with page.expect_download() as markdown:
            page.get_by_role("link", name="Report as Markdown").click()
        assert markdown.value.suggested_filename == f"grid-{sid}-report.md"
        text = open(markdown.value.path(), encoding="utf-8").read()
        assert text.startswith(f"# Grid #{sid}: ") and "\n## Tables as CSV\n" in text
    finally:
        context.close()

    # The downloaded file, from disk, with the network off.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    requests: list[str] = []
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(path.as_uri())
        count = page.locator("[data-chart]").count()
        assert count == 2 + len(effects["interactions"])  # cells, effects, one per pair
        expect(page.locator("[data-chart][data-drawn]")).to_have_count(count, timeout=15_000)
        drawn = {c["id"]: c for c in page.evaluate(CHARTS_JS)}
        for chart in drawn.values():
            assert chart["svg"] > 0 and chart["traces"] > 0 and chart["points"] > 0, chart

        # The charts show the API's numbers: effects and each interaction plot.
        levels = [lv for f in effects["effects"] for lv in f["levels"]]
        assert drawn["figure-effects"]["customdata"] == [
            [[lv["diff"], *lv["ci95"]] for lv in levels]
        ]
        for pair in effects["interactions"]:
            chart = drawn[f"figure-interaction-{pair['factor']}-{pair['across']}"]
            assert chart["customdata"] == [
                [[p["n"], p["mean"], *p["ci95"]] for p in s["points"]] for s in pair["series"]
            ]
        failed = page.get_by_text(f"run {sweep['run_ids'][4]} (failed): CUDA out of memory")
        expect(failed).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "report-offline.png", full_page=True)
    finally:
        context.close()
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []
