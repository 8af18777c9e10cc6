"""The exported study report opens offline: the issue's digits grid (2 activations x 2 LR
ratios x 2 augmentations x 3 seeds, runs finished by hand) is exported through the API,
written to a file and opened from disk in Chromium with the network off. Every chart must be
drawn by the plotly.js inside the file, with the numbers the API gives, and nothing may be
fetched from anywhere.

Run alone: `.venv/bin/pytest tests/browser/test_report_offline.py -v` (a few seconds).
The page is saved as artifacts/screenshots/report-offline.png.
"""

from __future__ import annotations

import pytest

from tests.app.test_report import GRID, activation_matters
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import finished_grid

pytestmark = pytest.mark.browser

# Per chart div: drawn by Plotly (its SVG), how many traces, and each trace's customdata
# (the unrounded numbers behind every point).
CHARTS_JS = """() => [...document.querySelectorAll('[data-chart]')].map((div) => ({
  id: div.id,
  svg: div.querySelectorAll('.main-svg').length,
  points: div.querySelectorAll('.scatterlayer .point').length,
  traces: div.data ? div.data.length : 0,
  customdata: div.data ? div.data.map((t) => t.customdata) : null,
}))"""


def test_exported_report_draws_every_chart_offline_with_the_apis_numbers(
    make_service, browser, tmp_path
):
    from playwright.sync_api import expect

    api = make_service(None).client
    sweep = finished_grid(api, GRID, activation_matters, fail={4: "CUDA out of memory"})
    response = api.get(f"/api/sweeps/{sweep['id']}/report.html")
    assert response.status_code == 200, response.text
    path = tmp_path / f"grid-{sweep['id']}-report.html"
    path.write_text(response.text, encoding="utf-8")
    effects = api.get(f"/api/sweeps/{sweep['id']}/effects").json()

    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    requests: list[str] = []
    errors: list[str] = []
    # Anything but the file itself is refused, and remembered.
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
        charts = page.locator("[data-chart]")
        count = charts.count()
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
        assert page.get_by_text(f"run {sweep['run_ids'][4]} (failed): CUDA out of memory").count()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "report-offline.png", full_page=True)
    finally:
        context.close()
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []
