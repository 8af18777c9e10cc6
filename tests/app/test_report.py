"""The study report, one click: GET /api/sweeps/{id}/report.html and report.md over sweeps of
factory rows. The HTML is read back (its tables' data-value numbers, its figures' JSON) and
compared with the JSON endpoints; the sentences are checked against the statistics."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from app.grid import paper_table
from tests.conftest import TINY, finished_grid

SECTIONS = ["summary", "question", "fixed", "factors", "cells", "anova", "effects",
            "interactions", "power", "best", "failed", "reproducibility"]  # fmt: skip
# The issue's grid: digits, 2 activations x 2 LR ratios x 2 augmentations x 3 seeds.
GRID = {
    "activation": ["relu", "sigmoid"],
    "lr_ratio": ["2:1:1", "5:4:1"],
    "augmentation": ["none", "crop_flip"],
}
ENVIRONMENT = {
    "torch": "2.5.1+cu124",
    "cuda": "12.4",
    "device": "cuda:0",
    "gpu": "NVIDIA H200",
    "precision": "bf16",
    "python": "3.11.9",
    "code": "resnet-lab 0.1.0 (git 0123456789ab)",
}


def noise(i: int) -> float:
    """A fixed, irregular spread of ±0.5 points, so no two cells are alike."""
    return ((i * 37) % 11 - 5) / 1000


def activation_matters(config: dict, i: int) -> float:
    """Sigmoid costs 5 points, crop + flip gains 1; the LR ratio does nothing."""
    acc = 0.95 if config["activation"] == "relu" else 0.90
    return acc + (0.01 if config["augmentation"] == "crop_flip" else 0.0) + noise(i)


class Report(HTMLParser):
    """What a test reads of the HTML report: sections, tables (text and data-value of each
    cell, by column title), figures (their JSON) and the text."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[dict[str, tuple[str, Any]]]] = {}
        self.figures: dict[str, dict] = {}
        self.charts: list[str] = []
        self.text: list[str] = []
        self._table = self._cell = self._figure = None
        self._columns: list[str] = []
        self._row: list[tuple[str, Any]] | None = None
        self._buffer: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "table":
            self._table, self._columns = a["data-table"], []
            self.tables[self._table] = []
        elif tag in ("th", "td") and self._table:
            self._cell = a.get("data-value")
            self._buffer = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "script" and "data-figure" in a:
            self._figure, self._buffer = a["data-figure"], []
        elif tag == "div" and "data-chart" in a:
            self.charts.append(a["id"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "th" and self._table and self._row is not None:
            self._columns.append("".join(self._buffer))
        elif tag == "td" and self._table:
            value = None if self._cell is None else json.loads(self._cell)
            self._row.append(("".join(self._buffer), value))
        elif tag == "tr" and self._table and self._row and len(self._row) == len(self._columns):
            self.tables[self._table].append(dict(zip(self._columns, self._row)))
        elif tag == "script" and self._figure:
            self.figures[self._figure] = json.loads("".join(self._buffer))
            self._figure = None

    def handle_data(self, data):
        if self._figure or (self._table and self._row is not None):
            self._buffer.append(data)
        if not self._figure and len(data) < 2000:  # not plotly.js
            self.text.append(data)

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def get(api, path: str, **params) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def html_report(api, sweep_id: int, **params) -> Report:
    response = get(api, f"/api/sweeps/{sweep_id}/report.html", **params)
    assert response.headers["content-type"].startswith("text/html")
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="grid-{sweep_id}-report.html"'
    return Report(response.text)


def csv_tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    blocks = re.findall(r"### ([\w-]+)\n\n```csv\n(.*?)\n```", markdown, re.S)
    return {name: list(csv.DictReader(io.StringIO(body))) for name, body in blocks}


def test_html_report_numbers_are_the_apis_and_its_sentences_follow_them(api):
    sweep = finished_grid(api, GRID, activation_matters)
    sid = sweep["id"]
    report = html_report(api, sid)
    assert report.sections == SECTIONS
    anova = get(api, f"/api/sweeps/{sid}/anova").json()
    effects = get(api, f"/api/sweeps/{sid}/effects").json()
    power = get(api, f"/api/sweeps/{sid}/power", difference=0.2).json()
    summary = get(api, f"/api/sweeps/{sid}").json()

    # The ANOVA table: every number as /anova has it.
    rows = {r["source"][0]: r for r in report.tables["anova"]}
    for term in anova["rows"]:
        row = rows[" × ".join(term["factors"])]
        for column, key in [("sum of squares", "sum_sq"), ("df", "df"), ("F", "F"), ("p", "p"),
                            ("η²", "eta_sq"), ("partial η²", "partial_eta_sq")]:  # fmt: skip
            assert row[column][1] == term[key], (term["term"], column)
    assert rows["residual"]["sum of squares"][1] == anova["residual"]["sum_sq"]

    # Cells: n, mean, std and interval as the sweep's summary has them.
    cells = {tuple(r[f][0] for f in GRID): r for r in report.tables["cells"]}
    assert len(cells) == 8 == len(summary["cells"])
    for cell in summary["cells"]:
        row = cells[tuple(cell["key"][f] for f in GRID)]
        assert row["n"][1] == cell["n"] == 3
        assert row["mean ± std"][1] == [cell["mean"], cell["std"]]
        assert row["95 % CI"][1] == cell["ci95"]

    # Effects: the table and the dot-and-whisker chart carry /effects's numbers.
    levels = [(f["factor"], lv) for f in effects["effects"] for lv in f["levels"]]
    table = report.tables["effects"]
    assert [(r["factor"][0], r["difference"][1], r["95 % CI"][1]) for r in table] == [
        (f, lv["diff"], lv["ci95"]) for f, lv in levels
    ]
    (trace,) = report.figures["figure-effects"]["data"]
    assert trace["customdata"] == [[lv["diff"], *lv["ci95"]] for _, lv in levels]
    assert trace["x"] == pytest.approx([lv["diff"] * 100 for _, lv in levels])

    # One interaction chart per pair of factors, each point /effects's mean and interval.
    pairs = effects["interactions"]
    assert len(pairs) == 3
    for pair in pairs:
        figure = report.figures[f"figure-interaction-{pair['factor']}-{pair['across']}"]
        assert [t["customdata"] for t in figure["data"]] == [
            [[p["n"], p["mean"], *p["ci95"]] for p in s["points"]] for s in pair["series"]
        ]
    assert sorted(report.charts) == sorted(report.figures)
    assert len(report.charts) == 2 + len(pairs)  # cells, effects, interactions

    # Seeds needed: /power's answer at its default 0.2 points.
    seeds = {r["factor"][0]: r for r in report.tables["seeds-needed"]}
    for f in power["factors"]:
        assert seeds[f["factor"]]["seeds per cell needed"][1] == f["seeds_per_cell"]
        assert seeds[f["factor"]]["runs per level needed"][1] == f["runs_per_level"]
        assert seeds[f["factor"]]["extra runs"][1] == f["extra_runs"]

    # Sentences: what the numbers support, no more.
    text = report.all_text()
    by_term = {r["term"]: r for r in anova["rows"]}
    activation, ratio = by_term["activation"], by_term["lr_ratio"]
    assert activation["p"] < 0.001 and ratio["p"] > 0.05
    share = f"{activation['eta_sq'] * 100:.0f} %"
    assert f"activation explains {share} of the variance, F = {activation['F']:.1f}, p < 0.001" in (
        text
    )
    assert (
        f"lr_ratio: no detectable effect at n = 3, F = {ratio['F']:.1f}, p = {ratio['p']:.3g}"
        in (text)
    )
    assert "lr_ratio explains" not in text
    best = summary["best"]
    assert best["key"] == {"activation": "relu", "lr_ratio": best["key"]["lr_ratio"],
                           "augmentation": "crop_flip"}  # fmt: skip
    label = " · ".join(best["key"][f] for f in GRID)
    assert f"Best cell: {label}, the highest mean, {best['mean'] * 100:.2f} %" in text
    # The two relu + crop_flip cells differ only by the LR ratio, which does nothing.
    assert "the grid does not tell these two apart" in text


def test_markdown_is_the_same_report_with_its_tables_as_csv(api):
    sweep = finished_grid(api, GRID, activation_matters, fail={4: "CUDA out of memory"})
    sid = sweep["id"]
    response = get(api, f"/api/sweeps/{sid}/report.md")
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.headers["content-disposition"].endswith(f'filename="grid-{sid}-report.md"')
    text = response.text
    report = html_report(api, sid)
    titles = re.findall(r"^## (.+)$", text, re.M)
    html_titles = re.findall(
        r'<h2 id="[\w-]+-title">([^<]+)</h2>', get(api, f"/api/sweeps/{sid}/report.html").text
    )
    assert titles == html_titles + ["Tables as CSV"]
    # The same sentences, in both.
    for sentence in re.findall(r"^- (.+)$", text, re.M):
        assert sentence.replace("\\|", "|") in report.all_text()
    assert "activation: an effect (partial η² " in text
    assert "lr_ratio: no detectable effect at n = 2–3 seeds per cell" in text
    assert f"run {sweep['run_ids'][4]} (failed): CUDA out of memory" in text
    assert "| relu | 2:1:1 | none | 3 |" in text and "| relu | 2:1:1 | crop_flip | 2 |" in text
    # Every table again as CSV, unrounded: the numbers the HTML's cells hold.
    tables = csv_tables(text)
    assert sorted(tables) == sorted(report.tables)
    for name, rows in tables.items():
        assert len(rows) == len(report.tables[name]), name
    for row, shown in zip(tables["cells"], report.tables["cells"]):
        assert [float(row["mean"]), float(row["std"])] == shown["mean ± std"][1]
        assert [float(row["ci95_low"]), float(row["ci95_high"])] == shown["95 % CI"][1]
    anova = get(api, f"/api/sweeps/{sid}/anova").json()
    assert [float(r["p"]) for r in tables["anova"][:-1]] == [r["p"] for r in anova["rows"]]


def test_grid_without_an_effect_says_so_and_claims_no_best_cell(api):
    sweep = finished_grid(api, GRID, lambda config, i: 0.9 + noise(i))
    anova = get(api, f"/api/sweeps/{sweep['id']}/anova").json()
    assert all(r["p"] > 0.05 for r in anova["rows"])
    text = html_report(api, sweep["id"]).all_text()
    for r in anova["rows"]:
        name = " × ".join(r["factors"])
        if len(r["factors"]) > 1:
            name = f"the {name} interaction"
        assert f"{name}: no detectable effect at n = 3, F = {r['F']:.1f}" in text
    assert "explains" not in text and "an effect" not in text.replace("no detectable effect", "")
    assert "the grid does not tell these two apart" in text


def test_failed_runs_are_listed_with_their_reason(api):
    fail = {
        4: "CUDA out of memory. Tried to allocate 2.00 GiB",
        9: "Traceback (most recent call last):\n  ...\nValueError: the loss is nan at epoch 3",
    }
    sweep = finished_grid(api, GRID, activation_matters, fail=fail)
    ids = sweep["run_ids"]
    report = html_report(api, sweep["id"])
    text = report.all_text()
    assert f"run {ids[4]} (failed): CUDA out of memory. Tried to allocate 2.00 GiB" in text
    assert (
        f"run {ids[9]} (failed): Traceback (most recent call last): ... ValueError: the loss is "
        "nan at epoch 3" in text
    )
    assert "2 runs did not finish (see Failed runs); the analysis leaves them out." in text
    assert report.tables["cells"][1]["n"][1] == 2  # relu, 2:1:1, crop_flip lost run 4


def test_reproducibility_names_code_versions_devices_dataset_and_time(api):
    sweep = finished_grid(api, GRID, activation_matters, environment=ENVIRONMENT)
    report = html_report(api, sweep["id"])
    rows = {r["what"][0]: r["value"] for r in report.tables["reproducibility"]}
    assert rows["code that trained the runs"][0] == "resnet-lab 0.1.0 (git 0123456789ab) (24 runs)"
    assert rows["code that wrote this report"][0].startswith("resnet-lab ")
    assert rows["torch"][0] == "2.5.1+cu124 (24 runs)"
    assert rows["CUDA"][0] == "12.4 (24 runs)"
    assert rows["devices"][0] == "cuda:0: NVIDIA H200 (24 runs)"
    assert rows["precision"][0] == "bf16 (24 runs)"
    assert rows["workers"][0] == "test-worker (24 runs)"
    limits = f"the first {TINY['train_limit']} training images and the first {TINY['test_limit']}"
    assert rows["dataset"][0] == f"digits: {limits} test images"
    # A finished run's duration is its training time: the sum over the grid.
    runs = [get(api, f"/api/runs/{i}").json() for i in sweep["run_ids"]]
    total = sum(r["duration_seconds"] for r in runs)
    assert total == 24 * 30.0
    assert rows["total training time, all runs"] == ("12 min 00 s (720 s)", total)
    # The fixed settings are every setting the runs share, defaults included.
    fixed = {r["setting"][0]: r["value"][0] for r in report.tables["fixed-settings"]}
    assert fixed["dataset"] == "digits" and fixed["momentum"] == "0.9"
    assert not set(fixed) & {*GRID, "seed"}


def test_report_preset_shows_the_reports_table_beside_ours(api):
    base = {k: v for k, v in TINY.items() if k not in ("dataset", "augmentation")}
    sweep = finished_grid(
        api, {"preset": "report"}, lambda c, i: 0.9 + noise(i), seeds=(0,), base=base
    )
    report = html_report(api, sweep["id"])
    summary = get(api, f"/api/sweeps/{sweep['id']}").json()
    paper = paper_table()
    rows = report.tables["cells"]
    assert len(rows) == 36
    factors = list(summary["grid"])
    for cell in summary["cells"]:
        row = next(r for r in rows if all(r[f][0] == cell["key"][f] for f in factors))
        assert row["the report's figure"][1] == cell["paper_test_acc"]
        key = (cell["key"]["augmentation"], cell["key"]["activation"], cell["key"]["lr_ratio"])
        assert row["the report's figure"][1] == paper[key]
        assert row["ours − report"][1] == pytest.approx(cell["diff_from_paper"])
    assert [t["name"] for t in report.figures["figure-cells"]["data"]] == [
        "ours: mean ± 95 % CI",
        "the report",
    ]
    # One run per cell: the additive model, and the report says why.
    assert "One run per cell: interactions cannot be told from noise" in report.all_text()


def test_loss_report_ranks_the_lowest_mean_and_has_no_papers_column(api):
    sweep = finished_grid(api, GRID, activation_matters)
    report = html_report(api, sweep["id"], metric="final_test_loss")
    assert "the report's figure" not in report.tables["cells"][0]
    assert "Best cell: relu · " in report.all_text() and "the lowest mean" in report.all_text()


def test_user_text_is_escaped_in_both_writers(api):
    name = "</script><script>alert(1)</script> | <b>bold</b>"
    response = api.post("/api/sweeps", json={"name": name, "base": TINY, "grid": GRID})
    sid = response.json()["id"]
    page = get(api, f"/api/sweeps/{sid}/report.html").text
    assert "<script>alert(1)" not in page and "<b>bold" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; | &lt;b&gt;bold" in page
    text = get(api, f"/api/sweeps/{sid}/report.md").text
    assert text.startswith(f"# Grid #{sid}: </script><script>alert(1)</script> \\| <b>bold</b>")
    # No finished run: the report still says what there is, and why there is no analysis.
    assert "No analysis of variance: Too few finished runs" in page


@pytest.mark.parametrize("path", ["report.html", "report.md"])
def test_unknown_sweep_is_404_and_a_bad_metric_422(api, path):
    assert api.get(f"/api/sweeps/999/{path}").status_code == 404
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": GRID}).json()
    response = api.get(f"/api/sweeps/{sweep['id']}/{path}", params={"metric": "accuracy"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "metric"]


def test_grid_page_links_both_reports_as_downloads(api):
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": GRID}).json()
    page = get(api, f"/sweeps/{sweep['id']}").text
    for ext in ("html", "md"):
        assert (
            f'href="/api/sweeps/{sweep["id"]}/report.{ext}" '
            f'download="grid-{sweep["id"]}-report.{ext}"' in page
        )
