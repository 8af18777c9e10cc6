"""The study report of a grid, in one click: a list of sections (sentences, tables that keep
the unrounded numbers they show, Plotly figures) built once from app.analysis, then written
out as Markdown with its tables also as CSV, or as one HTML file that opens offline with its
charts drawn (plotly.js inlined).

Every statistic comes from the functions behind /api/sweeps/{id}/anova, /effects and
/power, called once here with the same arguments, so the report's numbers are the API's.
The sentences are written from those numbers and say no more than they do: a term is "an
effect" only at p < 0.05, anything else is "no detectable effect at n = ...".
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from app import analysis
from app.grid import paper_figure
from app.stats import ACCURACY_BOUNDS, describe, welch_p
from core.db import Sweep
from trainer.version import code_version

ALPHA, POWER = 0.05, 0.8
# The difference the seeds estimate is sized for: 0.2 points of accuracy, 0.01 of a loss.
DIFFERENCE = {True: 0.002, False: 0.01}
ERROR_CHARS = 300  # of a failed run's error, whitespace collapsed
PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"]


# ---------------------------------------------------------------- what a report is made of


@dataclass
class Column:
    title: str
    # Names of the CSV columns its numbers fill ("mean", "std"); () = one, the title.
    csv: tuple[str, ...] = ()


@dataclass
class Cell:
    text: str
    # The unrounded number(s) the text shows (a tuple for "mean ± std"); None for text.
    value: Any = None


@dataclass
class Table:
    name: str  # the CSV's name and the HTML table's id
    columns: list[Column]
    rows: list[list[Cell]]


@dataclass
class Figure:
    id: str
    title: str
    spec: dict[str, Any]  # a Plotly figure: {"data": [...], "layout": {...}}


@dataclass
class Section:
    id: str
    title: str
    # ("p", text) | ("list", [text]) | ("table", Table) | ("figure", Figure), in order
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def p(self, text: str) -> Section:
        self.blocks.append(("p", text))
        return self

    def items(self, texts: list[str]) -> Section:
        if texts:
            self.blocks.append(("list", texts))
        return self

    def table(self, table: Table) -> Section:
        self.blocks.append(("table", table))
        return self

    def figure(self, figure: Figure) -> Section:
        self.blocks.append(("figure", figure))
        return self


@dataclass
class Study:
    sweep_id: int
    title: str
    metric: str
    byline: str
    sections: list[Section]

    def tables(self) -> list[Table]:
        return [b for s in self.sections for kind, b in s.blocks if kind == "table"]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for kind, b in s.blocks if kind == "figure"]


# ---------------------------------------------------------------- numbers as text


def _acc(metric: str) -> bool:
    return metric in analysis.ACCURACIES


def num(x: float | None, metric: str) -> str:
    if x is None:
        return "—"
    return f"{x * 100:.2f} %" if _acc(metric) else f"{x:.4f}"


def points(x: float | None, metric: str) -> str:
    """A difference or a spread: percentage points of accuracy, loss units as they are."""
    if x is None:
        return "—"
    return analysis.fmt_diff(x, metric) + (" points" if _acc(metric) else "")


def p_text(p: float | None) -> str:
    """'p < 0.001' or 'p = ' three significant digits (0.0496 stays below 0.05 as shown)."""
    if p is None:
        return "p: —"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _f(f: float | None) -> str:
    return "—" if f is None else f"{f:.2f}"


def _p_cell(p: float | None) -> str:
    return "—" if p is None else p_text(p).removeprefix("p = ").removeprefix("p ")


def _share(x: float) -> str:
    return "under 1 %" if x < 0.005 else f"{x * 100:.0f} %"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _seconds(seconds: float) -> str:
    return f"{_duration(seconds)} ({seconds:,.0f} s)"


def _plain(value: Any, limit: int = ERROR_CHARS) -> str:
    return " ".join(str(value).split())[:limit]


def _per_cell(counts: Sequence[int]) -> str:
    """The seeds a cell holds, as the sentences say it: 'n = 3', or 'n = 2–3' after failures."""
    filled = [n for n in counts if n] or [0]
    lo, hi = min(filled), max(filled)
    return f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"


def finding(row: dict[str, Any], per_cell: str) -> str:
    """One sentence about one ANOVA term that says no more than its numbers do."""
    name = " × ".join(row["factors"])
    eta, f = row["partial_eta_sq"], row["F"]
    stats_text = f"F = {f:.2f}, {p_text(row['p'])}" if f is not None else p_text(row["p"])
    if row["p"] is not None and row["p"] < ALPHA:
        if eta is None:
            return f"{name}: an effect, {stats_text}."
        return (
            f"{name}: an effect (partial η² {eta:.2f}: {eta * 100:.0f} % of the variance the "
            f"other terms leave), {stats_text}."
        )
    return f"{name}: no detectable effect at {per_cell} seeds per cell, {stats_text}."


def headline(row: dict[str, Any], per_cell: str) -> str:
    """The summary's clause for one term: 'activation explains 91 % of the variance, F =
    212.1, p < 0.001' or 'lr_ratio: no detectable effect at n = 3, F = 0.8, p = 0.45'."""
    name = " × ".join(row["factors"])
    if len(row["factors"]) > 1:
        name = f"the {name} interaction"
    f = "" if row["F"] is None else f", F = {row['F']:.1f}"
    if row["p"] is not None and row["p"] < ALPHA:
        share = row["eta_sq"]
        told = f"explains {_share(share)} of the variance" if share is not None else "has an effect"
        return f"{name} {told}{f}, {p_text(row['p'])}"
    return f"{name}: no detectable effect at {per_cell}{f}, {p_text(row['p'])}"


# ---------------------------------------------------------------- building the sections


def _cells(
    runs: Sequence[dict[str, Any]], grid: dict[str, list[Any]], metric: str
) -> list[dict[str, Any]]:
    """Every combination of the varying factors' levels, in the grid's order: its key, the
    statistics of its finished runs (as GET /api/sweeps/{id} gives them for final test
    accuracy) and the report's own figure where the study has one for it."""
    factors = analysis.varying(grid)
    bounds = ACCURACY_BOUNDS if _acc(metric) else None
    values: dict[tuple, list[float]] = {}
    configs: dict[tuple, dict] = {}
    for o in analysis.observations(runs, grid):
        values.setdefault(o["levels"], []).append(o["value"])
    for run in runs:
        key = tuple(_index(run["config"].get(f), grid[f]) for f in factors)
        configs.setdefault(key, run["config"])
    out = []
    for key in itertools.product(*(range(len(grid[f])) for f in factors)):
        config = configs.get(key)
        paper = paper_figure(config) if config is not None and _acc(metric) else None
        out.append(
            {
                "key": {f: grid[f][i] for f, i in zip(factors, key)},
                "values": values.get(key, []),
                **describe(values.get(key, []), bounds),
                "paper": paper,
            }
        )
    return out


def _index(value: Any, values: list[Any]) -> int | None:
    return next((i for i, v in enumerate(values) if v == value), None)


def _cell_label(key: dict[str, Any]) -> str:
    return " · ".join(str(v) for v in key.values()) or "all runs"


def build(
    sweep: Sweep,
    runs: list[dict[str, Any]],
    metric: str,
    reference: dict[str, Any] | None,
    now: datetime | None = None,
) -> Study:
    """The whole report of the sweep's runs (analysis.sweep_runs) for one metric."""
    grid = sweep.grid
    factors = analysis.varying(grid)
    name = analysis.METRIC_NAMES[metric]
    seeds = len(sweep.seeds)
    fitted = analysis.fit(runs, grid)
    effects = analysis.effects(fitted, grid, reference, metric)
    pairs = analysis.interactions(runs, grid, metric)
    power = analysis.seeds_needed(fitted, grid, runs, seeds, DIFFERENCE[_acc(metric)], ALPHA, POWER)
    cells = _cells(runs, grid, metric)
    per_cell = _per_cell([c["n"] for c in cells])
    best = _best(cells, metric)
    failed = analysis.failed_runs(runs)

    sections = [
        _summary(fitted, per_cell, best, failed, runs, metric),
        _question(factors, name, runs, seeds),
        _fixed(sweep, runs, factors),
        Section("factors", "Factors").items(
            [f"{f}: {', '.join(str(v) for v in grid[f])}" for f in factors]
            + [f"seeds (the replicates): {', '.join(str(s) for s in sweep.seeds)}"]
        ),
        _cells_section(cells, factors, metric, name),
        _anova_section(fitted, per_cell),
        _effects_section(fitted, effects, metric, name),
        _interactions_section(pairs, metric, name),
        _power_section(power, metric),
        _best_section(best, metric, name),
        _failed_section(failed, runs),
        _reproducibility(sweep, runs, now or datetime.now(UTC)),
    ]
    byline = (
        f"Metric: {name}. Written {(now or datetime.now(UTC)):%Y-%m-%d %H:%M} UTC "
        f"by {code_version()}."
    )
    return Study(sweep.id, f"Grid #{sweep.id}: {_plain(sweep.name, 200)}", metric, byline, sections)


def _summary(fitted, per_cell, best, failed, runs, metric) -> Section:
    section = Section("summary", "Summary")
    if fitted["rows"]:
        clauses = [headline(r, per_cell) for r in fitted["rows"]]
        section.p("; ".join(clauses) + ".")
        section.p(
            f"Type II ANOVA of the {analysis.METRIC_NAMES[metric]} over {fitted['n']} finished "
            f"runs, α = {ALPHA:g}; shares of the variance are η² (sum of squares / total)."
        )
    else:
        section.p(f"No analysis of variance: {fitted['note']}.")
    if best:
        section.p(_best_sentence(best, metric))
    active = sum(r["status"] in ("queued", "running") for r in runs)
    tail = []
    if failed:
        tail.append(f"{len(failed)} run{'s' if len(failed) != 1 else ''} did not finish")
    if active:
        tail.append(f"{active} still queued or running")
    if tail:
        section.p(
            " and ".join(tail).capitalize() + " (see Failed runs); the analysis leaves them out."
        )
    return section


def _question(factors, name, runs, seeds) -> Section:
    finished = sum(r["value"] is not None for r in runs)
    return Section("question", "Question").p(
        f"Does {' or '.join(factors) or 'any factor'} change the {name}? "
        f"{finished} of {len(runs)} runs finished with a value; {seeds} seed"
        f"{'s' if seeds != 1 else ''} per cell are the replicates."
    )


def _fixed(sweep: Sweep, runs, factors) -> Section:
    """The settings every run shares: a run's whole config less the factors and the seed
    (the sweep's base alone lists only what was typed, not the defaults it ran with)."""
    if runs:
        settings = {k: v for k, v in runs[0]["config"].items() if k not in factors and k != "seed"}
    else:
        settings = {**sweep.base, **{f: v[0] for f, v in sweep.grid.items() if f not in factors}}
    rows = [[Cell(k), Cell(_plain(v))] for k, v in sorted(settings.items())]
    table = Table("fixed-settings", [Column("setting"), Column("value")], rows)
    return Section("fixed", "Fixed settings").table(table)


def _cells_section(cells, factors, metric, name) -> Section:
    paper = any(c["paper"] is not None for c in cells)
    columns = [Column(f) for f in factors] + [
        Column("n"),
        Column("mean ± std", ("mean", "std")),
        Column("95 % CI", ("ci95_low", "ci95_high")),
    ]
    if paper:
        columns += [Column("the report's figure", ("report",)), Column("ours − report")]
    rows = []
    for c in cells:
        row = [Cell(_plain(v)) for v in c["key"].values()]
        spread = f" ± {points(c['std'], metric)}" if c["std"] is not None else ""
        ci = tuple(c["ci95"]) if c["ci95"] else None
        row += [
            Cell(str(c["n"]), c["n"]),
            Cell(num(c["mean"], metric) + spread, (c["mean"], c["std"])),
            Cell(f"{num(ci[0], metric)} – {num(ci[1], metric)}" if ci else "—", ci),
        ]
        if paper:
            diff = c["mean"] - c["paper"] if c["paper"] is not None and c["n"] else None
            row += [Cell(num(c["paper"], metric), c["paper"]), Cell(points(diff, metric), diff)]
        rows.append(row)
    section = Section("cells", "Cells")
    section.p(
        f"The {name} of each cell: n finished runs (seeds), their mean ± std and the 95 % "
        "t-interval of the mean."
        + (
            " Beside it, the report's own test accuracy for the same cell (one run each)."
            if paper
            else ""
        )
    )
    section.table(Table("cells", columns, rows))
    if any(c["n"] for c in cells):
        section.figure(_cells_figure(cells, metric, name, paper))
    return section


def _anova_section(fitted, per_cell) -> Section:
    section = Section("anova", "Analysis of variance")
    section.p(f"Model: {fitted['model'] or 'none'}. {fitted['note']}.")
    if not fitted["rows"]:
        return section
    columns = [Column("source"), Column("sum of squares"), Column("df"), Column("F"),
               Column("p"), Column("η²"), Column("partial η²")]  # fmt: skip
    rows = []
    for r in fitted["rows"]:
        rows.append(
            [
                Cell(" × ".join(r["factors"])),
                Cell(f"{r['sum_sq']:.4g}", r["sum_sq"]),
                Cell(str(r["df"]), r["df"]),
                Cell(_f(r["F"]), r["F"]),
                Cell(_p_cell(r["p"]), r["p"]),
                Cell(_f(r["eta_sq"]), r["eta_sq"]),
                Cell(_f(r["partial_eta_sq"]), r["partial_eta_sq"]),
            ]
        )
    res = fitted["residual"]
    rows.append(
        [Cell("residual"), Cell(f"{res['sum_sq']:.4g}", res["sum_sq"]),
         Cell(str(res["df"]), res["df"]), Cell(""), Cell(""), Cell(""), Cell("")]
    )  # fmt: skip
    section.table(Table("anova", columns, rows))
    return section.items([finding(r, per_cell) for r in fitted["rows"]])


def _effects_section(fitted, effects, metric, name) -> Section:
    section = Section("effects", "Effects (95 % intervals)")
    if not fitted["residual"]:
        return section.p(f"No intervals: {fitted['note']}.")
    section.p(f"Each level against the reference level. Method: {analysis.CI_METHOD}.")
    columns = [Column("factor"), Column("level"), Column("reference"),
               Column("difference"), Column("95 % CI", ("ci95_low", "ci95_high"))]  # fmt: skip
    rows, texts = [], []
    for factor in effects:
        for level in factor["levels"]:
            ci = tuple(level["ci95"]) if level["ci95"] else None
            rows.append(
                [
                    Cell(factor["factor"]),
                    Cell(_plain(level["level"])),
                    Cell(_plain(factor["reference"])),
                    Cell(points(level["diff"], metric), level["diff"]),
                    Cell(f"{points(ci[0], metric)} – {points(ci[1], metric)}" if ci else "—", ci),
                ]
            )
            if level["text"]:
                texts.append(f"{factor['factor']}: {level['text']}")
    section.table(Table("effects", columns, rows))
    if any(level["diff"] is not None for f in effects for level in f["levels"]):
        section.figure(_effects_figure(effects, metric, name))
    return section.items(texts)


def _interactions_section(pairs, metric, name) -> Section:
    section = Section("interactions", "Interactions")
    usable = [p for p in pairs if any(pt["n"] for s in p["series"] for pt in s["points"])]
    if not usable:
        return section.p("Interaction plots need two factors that vary, and finished runs.")
    section.p(
        f"Mean {name} ± 95 % t-interval over the runs at each pair of levels, the other "
        "factors pooled. Parallel lines: no interaction; the ANOVA's interaction terms say "
        "whether a departure from parallel is more than noise."
    )
    for pair in usable:
        columns = [Column(pair["factor"]), Column(pair["across"]), Column("n"),
                   Column("mean"), Column("95 % CI", ("ci95_low", "ci95_high"))]  # fmt: skip
        rows = []
        for series in pair["series"]:
            for pt in series["points"]:
                ci = tuple(pt["ci95"]) if pt["ci95"] else None
                rows.append(
                    [
                        Cell(_plain(series["level"])),
                        Cell(_plain(pt["level"])),
                        Cell(str(pt["n"]), pt["n"]),
                        Cell(num(pt["mean"], metric), pt["mean"]),
                        Cell(f"{num(ci[0], metric)} – {num(ci[1], metric)}" if ci else "—", ci),
                    ]
                )
        slug = f"interaction-{pair['factor']}-{pair['across']}"
        section.figure(_interaction_figure(pair, metric, name, slug))
        section.table(Table(slug, columns, rows))
    return section


def _power_section(power, metric) -> Section:
    section = Section("power", "How many seeds would settle it")
    if not power["factors"]:
        return section.p(power["note"] + ".")
    section.p(
        f"Residual sd {points(power['residual_sd'], metric)}; {power['note']}. "
        f"A difference of {points(power['difference'], metric)}, alpha {power['alpha']:g}, "
        f"power {power['power']:g}."
    )
    columns = [Column("factor"), Column("runs per level needed"),
               Column("seeds per cell needed"), Column("seeds per cell now"), Column("extra runs"),
               Column("extra training (one worker)", ("extra_seconds",))]  # fmt: skip
    rows, lines = [], []
    for f in power["factors"]:
        seconds = f["extra_train_seconds"]
        rows.append(
            [
                Cell(f["factor"]),
                Cell(f"{f['runs_per_level']:.1f}", f["runs_per_level"]),
                Cell(str(f["seeds_per_cell"]), f["seeds_per_cell"]),
                Cell(str(power["seeds"]), power["seeds"]),
                Cell(str(f["extra_runs"]), f["extra_runs"]),
                Cell(_duration(seconds) if seconds is not None else "—", seconds),
            ]
        )
        cost = ""
        if f["extra_seeds"]:
            hours = f", about {_duration(seconds)} of training on one worker" if seconds else ""
            cost = f" ({f['extra_runs']} more runs{hours})"
        lines.append(
            f"To tell two levels of {f['factor']} apart at {points(power['difference'], metric)} "
            f"you need n ≈ {f['seeds_per_cell']} seeds per cell; you have {power['seeds']}{cost}."
        )
    section.table(Table("seeds-needed", columns, rows))
    return section.items(lines)


def _best(cells, metric) -> dict[str, Any] | None:
    """The cell with the highest mean accuracy (lowest mean loss) and the runner-up."""
    ranked = sorted((c for c in cells if c["n"]), key=lambda c: c["mean"], reverse=_acc(metric))
    if not ranked:
        return None
    return {"cell": ranked[0], "next": ranked[1] if len(ranked) > 1 else None}


def _best_sentence(best, metric) -> str:
    cell, nxt = best["cell"], best["next"]
    word = "highest" if _acc(metric) else "lowest"
    spread = f" ± {points(cell['std'], metric)}" if cell["std"] is not None else ""
    text = (
        f"Best cell: {_cell_label(cell['key'])}, the {word} mean, {num(cell['mean'], metric)}"
        f"{spread} (n = {cell['n']})."
    )
    if nxt is None:
        return text
    gap = abs(cell["mean"] - nxt["mean"])
    p = welch_p(cell["values"], nxt["values"])
    text += f" The runner-up, {_cell_label(nxt['key'])}, is {points(gap, metric)} behind"
    if p is None:
        return text + "; too few runs in one of them to test the gap."
    if p < ALPHA:
        return text + (
            f"; Welch's t-test {p_text(p)}, but the pair was picked after seeing the means, so "
            "that p understates the chance of a fluke."
        )
    return text + f"; Welch's t-test {p_text(p)}: the grid does not tell these two apart."


def _best_section(best, metric, name) -> Section:
    section = Section("best", "Best cell")
    if best is None:
        return section.p(f"No cell has a finished run with a {name} yet.")
    return section.p(_best_sentence(best, metric))


def _failed_section(failed, runs) -> Section:
    section = Section("failed", "Failed runs")
    active = sum(r["status"] in ("queued", "running") for r in runs)
    if active:
        section.p(f"{active} run{'s' if active != 1 else ''} still queued or running.")
    if not failed:
        return section.p("None.")
    return section.items(
        [
            f"run {r['id']} ({r['status']}): {_plain(r['error'] or 'no error recorded')}"
            for r in failed
        ]
    )


def _counted(values: Sequence[str | None], missing: str) -> str:
    """'2.5.1 (24 runs)' or 'a (20 runs), b (4 runs)'; runs without the value named."""
    counts = Counter(v for v in values if v)
    parts = [f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in counts.most_common()]
    lost = sum(1 for v in values if not v)
    if lost:
        parts.append(f"{missing} ({lost} run{'s' if lost != 1 else ''})")
    return ", ".join(parts) or "—"


def _no_cuda(device: str | None) -> str:
    """'none (cpu)' for a run recorded on a device that is not CUDA; '' when unknown."""
    return f"none ({device})" if device and not device.startswith("cuda") else ""


def _reproducibility(sweep: Sweep, runs, now: datetime) -> Section:
    started = [r for r in runs if r.get("environment")]
    envs = [r.get("environment") or {} for r in started]
    unrecorded = "not recorded"
    devices = []
    for env in envs:
        hardware = env.get("gpu") or env.get("cpu")
        devices.append(f"{env.get('device')}: {hardware}" if hardware else env.get("device"))
    config = runs[0]["config"] if runs else {**sweep.base}
    datasets = sorted({str(r["config"].get("dataset")) for r in runs}) or [
        str(config.get("dataset", "cifar10"))
    ]
    limits = []
    for key, what in (("train_limit", "training"), ("test_limit", "test")):
        n = config.get(key)
        if len(sweep.grid.get(key, [])) > 1:
            limits.append(f"{what} images as the factor {key} says")
        else:
            limits.append(f"the first {n} {what} images" if n else f"all {what} images")
    seconds = math.fsum(r["train_seconds"] or 0.0 for r in runs)
    done = math.fsum(r["train_seconds"] or 0.0 for r in runs if r["status"] == "succeeded")
    statuses = Counter(r["status"] for r in runs)
    cuda = [e.get("cuda") or (_no_cuda(e.get("device")) or None) for e in envs]
    rows = [
        ("code that trained the runs", _counted([e.get("code") for e in envs], unrecorded)),
        ("code that wrote this report", code_version()),
        ("torch", _counted([e.get("torch") for e in envs], unrecorded)),
        ("CUDA", _counted(cuda, unrecorded)),
        ("devices", _counted(devices, unrecorded)),
        ("precision", _counted([e.get("precision") for e in envs], unrecorded)),
        ("python", _counted([e.get("python") for e in envs], unrecorded)),
        ("workers", _counted([r.get("worker") for r in started], unrecorded)),
        ("dataset", f"{', '.join(datasets)}: {' and '.join(limits)}"),
        ("seeds", ", ".join(str(s) for s in sweep.seeds)),
        ("runs", ", ".join(f"{n} {s}" for s, n in statuses.most_common()) or "none"),
        ("grid created", f"{sweep.created_at:%Y-%m-%d %H:%M} UTC" if sweep.created_at else "—"),
        ("report written", f"{now:%Y-%m-%d %H:%M} UTC"),
    ]
    table = Table(
        "reproducibility",
        [Column("what"), Column("value")],
        [[Cell(k), Cell(v)] for k, v in rows]
        + [
            [Cell("total training time, all runs"), Cell(_seconds(seconds), seconds)],
            [Cell("training time of the succeeded runs"), Cell(_seconds(done), done)],
        ],
    )
    section = Section("reproducibility", "Reproducibility")
    if len(started) < len(runs):
        section.p(
            f"{len(runs) - len(started)} run{'s' if len(runs) - len(started) != 1 else ''} "
            "never started, so recorded no environment."
        )
    return section.table(table)


# ---------------------------------------------------------------- charts (Plotly figures)


def _layout(title: str, metric: str, **extra) -> dict[str, Any]:
    layout = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "margin": {"l": 70, "r": 20, "t": 50, "b": 70},
        "height": 380,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1f2937"},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "closest",
    }
    return layout | extra


def _axis(title: str, **extra) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": "#e5e7eb", "zeroline": False, **extra}


def _scale(metric: str) -> float:
    return 100.0 if _acc(metric) else 1.0


def _error(means, cis, scale: float) -> dict[str, Any]:
    """error_y/x arrays for means with (lo, hi) intervals, in the plotted scale."""
    up = [
        (hi - m) * scale if m is not None and hi is not None else 0
        for m, (_, hi) in zip(means, cis)
    ]
    down = [
        (m - lo) * scale if m is not None and lo is not None else 0
        for m, (lo, _) in zip(means, cis)
    ]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down,
            "visible": True, "thickness": 1.4, "width": 5}  # fmt: skip


def _ci(c: list[float] | None) -> tuple[float | None, float | None]:
    return (c[0], c[1]) if c else (None, None)


def _figure(fig_id: str, title: str, data: list[dict], layout: dict) -> Figure:
    """Validated by plotly's figure classes (a misspelt property fails here, not in the
    browser) and kept as the plain JSON plotly.js reads."""
    import plotly.graph_objects as go

    spec = go.Figure(data=data, layout=layout).to_plotly_json()
    return Figure(fig_id, title, {"data": spec["data"], "layout": spec["layout"]})


def _cells_figure(cells, metric, name, paper) -> Figure:
    scale = _scale(metric)
    filled = [c for c in cells if c["n"]]
    x = [_cell_label(c["key"]) for c in filled]
    means = [c["mean"] for c in filled]
    cis = [_ci(c["ci95"]) for c in filled]
    unit = " (%)" if _acc(metric) else ""
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "ours: mean ± 95 % CI",
            "x": x,
            "y": [m * scale for m in means],
            "error_y": _error(means, cis, scale) | {"color": PALETTE[0]},
            "marker": {"size": 9, "color": PALETTE[0]},
            # the unrounded numbers: n, mean, interval
            "customdata": [[c["n"], c["mean"], *_ci(c["ci95"])] for c in filled],
            "hovertemplate": "%{x}<br>mean %{y:.4g}, n = %{customdata[0]}<extra></extra>",
        }
    ]
    if paper:
        shown = [c for c in filled if c["paper"] is not None]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "the report",
                "x": [_cell_label(c["key"]) for c in shown],
                "y": [c["paper"] * scale for c in shown],
                "customdata": [[c["paper"]] for c in shown],
                "marker": {"size": 9, "symbol": "diamond-open", "color": PALETTE[1]},
                "hovertemplate": "%{x}<br>the report: %{y:.4g}<extra></extra>",
            }
        )
    layout = _layout(f"Mean {name} per cell", metric)
    layout["xaxis"] = _axis("cell", type="category", tickangle=-30, automargin=True)
    layout["yaxis"] = _axis(f"{name}{unit}")
    layout["height"] = 420
    return _figure("figure-cells", f"Mean {name} per cell", data, layout)


def _effects_figure(effects, metric, name) -> Figure:
    scale = _scale(metric)
    rows = [
        (f"{f['factor']}: {level['level']} − {f['reference']}", level)
        for f in effects
        for level in f["levels"]
        if level["diff"] is not None
    ]
    diffs = [r["diff"] for _, r in rows]
    cis = [_ci(r["ci95"]) for _, r in rows]
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "difference ± 95 % CI",
            "x": [d * scale for d in diffs],
            "y": [label for label, _ in rows],
            "error_x": _error(diffs, cis, scale) | {"color": PALETTE[0]},
            "marker": {"size": 9, "color": PALETTE[0]},
            "customdata": [[r["diff"], *_ci(r["ci95"])] for _, r in rows],
            "hovertemplate": "%{y}: %{x:.3g}<extra></extra>",
        }
    ]
    unit = " (points)" if _acc(metric) else ""
    layout = _layout(f"Effects on the {name}, 95 % intervals", metric)
    layout["xaxis"] = _axis(f"difference from the reference level{unit}")
    layout["yaxis"] = _axis("", type="category", automargin=True, autorange="reversed")
    layout["shapes"] = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
         "line": {"color": "#6b7280", "width": 1, "dash": "dot"}}
    ]  # fmt: skip
    layout["height"] = max(260, 90 + 40 * len(rows))
    layout["showlegend"] = False
    return _figure("figure-effects", f"Effects on the {name}", data, layout)


def _interaction_figure(pair, metric, name, slug) -> Figure:
    scale = _scale(metric)
    x = [str(pt["level"]) for pt in pair["series"][0]["points"]]
    data = []
    for i, series in enumerate(pair["series"]):
        color = PALETTE[i % len(PALETTE)]
        means = [pt["mean"] for pt in series["points"]]
        cis = [_ci(pt["ci95"]) for pt in series["points"]]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{pair['factor']} = {series['level']}",
                "x": x,
                "y": [m * scale if m is not None else None for m in means],
                "error_y": _error(means, cis, scale) | {"color": color},
                "line": {"color": color, "width": 2},
                "marker": {"size": 8, "color": color},
                "customdata": [[pt["n"], pt["mean"], *_ci(pt["ci95"])] for pt in series["points"]],
                "hovertemplate": "%{x}: %{y:.4g}, n = %{customdata[0]}<extra></extra>",
            }
        )
    unit = " (%)" if _acc(metric) else ""
    title = f"{pair['factor']} across {pair['across']}"
    layout = _layout(title, metric)
    layout["xaxis"] = _axis(pair["across"], type="category")
    layout["yaxis"] = _axis(f"{name}{unit}")
    return _figure(f"figure-{slug}", title, data, layout)


# ---------------------------------------------------------------- writers


def _md(value: Any) -> str:
    """Text as one Markdown table cell or list item: no line breaks, pipes escaped."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _csv_row(columns: list[Column], cells: list[Cell]) -> list[Any]:
    out: list[Any] = []
    for column, cell in zip(columns, cells):
        names = column.csv or (column.title,)
        values = cell.value if isinstance(cell.value, tuple) else (cell.value,)
        if len(names) == 1 and cell.value is None:
            out.append("" if cell.text == "—" else cell.text)
        else:
            out += ["" if v is None else v for v in (values + (None,) * len(names))[: len(names)]]
    return out


def table_csv(table: Table) -> str:
    """The table's unrounded numbers (accuracies as fractions) with one column per number."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for c in table.columns for name in (c.csv or (c.title,))])
    for row in table.rows:
        writer.writerow(_csv_row(table.columns, row))
    return out.getvalue()


def markdown(study: Study) -> str:
    lines = [f"# {_md(study.title)}", "", study.byline]
    for section in study.sections:
        lines += ["", f"## {section.title}"]
        for kind, block in section.blocks:
            lines.append("")
            if kind == "p":
                lines.append(_md(block))
            elif kind == "list":
                lines += [f"- {_md(item)}" for item in block]
            elif kind == "table":
                lines.append("| " + " | ".join(_md(c.title) for c in block.columns) + " |")
                lines.append("|" + "---|" * len(block.columns))
                lines += ["| " + " | ".join(_md(c.text) for c in row) + " |" for row in block.rows]
            elif kind == "figure":
                lines.append(f"*Chart in the HTML report: {_md(block.title)}.*")
    lines += ["", "## Tables as CSV", ""]
    lines.append("Unrounded numbers, accuracies as fractions (0.9012 is 90.12 %).")
    for table in study.tables():
        lines += ["", f"### {table.name}", "", "```csv", table_csv(table).rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' that
    could end the element or start a comment, whatever the labels hold."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(ch, esc)
    return text


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js as the installed plotly package ships it (the file the pages load)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def html(study: Study) -> str:
    """One HTML file: the sections, each table with a CSV link (a data: URL), every chart's
    figure as JSON and plotly.js inlined: it needs no server and no network."""
    from markupsafe import Markup

    from app.templating import templates

    figures = {f.id: Markup(_script_json(f.spec)) for f in study.figures()}
    csvs = {t.name: table_csv(t) for t in study.tables()}
    template = templates.env.get_template("report.html")
    return template.render(
        study=study,
        figures=figures,
        csvs=csvs,
        value_json=lambda v: json.dumps(v, allow_nan=False),
        plotly_js=Markup(plotly_js()),
    )
