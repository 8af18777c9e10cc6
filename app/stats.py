"""Sweep statistics: per-cell mean, spread, confidence interval and tests, with scipy."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from scipy import special

from app.grid import paper_figure
from core.db import ACTIVE, RunStatus

# Student's t through scipy.special's ufuncs (stdtr, stdtrit): the same figures as
# scipy.stats.ttest_ind / ttest_1samp / t.ppf, without their per-call overhead, which
# dominated a 108-run sweep summary (tests/app/test_stats.py checks they agree).


def describe(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """n, mean, std and the 95% t-interval, clipped to `bounds` (accuracies: 0..1; with two
    seeds the interval is ±12.7 std and would otherwise reach past 100%)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = math.fsum(values) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    std = _std(values, mean)
    half = float(special.stdtrit(n - 1, 0.975)) * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"n": n, "mean": mean, "std": std, "ci95": [lo, hi]}


def _std(values: Sequence[float], mean: float) -> float:
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _two_sided(t: float, df: float) -> float | None:
    if math.isnan(t) or math.isnan(df):
        return None
    return float(2 * special.stdtr(df, -abs(t)))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Welch's t-test (unequal variances), two-sided; None where undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
    va, vb = _std(a, ma) ** 2 / len(a), _std(b, mb) ** 2 / len(b)
    if va + vb == 0:
        return None if ma == mb else 0.0
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _two_sided(t, df)


def one_sample_p(values: Sequence[float], target: float) -> float | None:
    """One-sample t-test of the mean against `target`, two-sided."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    std = _std(values, mean)
    if std == 0:
        return None if mean == target else 0.0
    return _two_sided((mean - target) / (std / math.sqrt(n)), n - 1)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment, in the given order; None stays None and is not counted.

    36 cells tested at alpha = 0.05 each flag about two differences by chance; Holm-adjusted
    p-values below alpha keep the chance of any false flag in the table under alpha.
    scipy has no Holm (stats.false_discovery_control is Benjamini-Hochberg)."""
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        # The smallest p is multiplied by m, the next by m - 1, ...; never below an earlier one.
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


ACCURACY_BOUNDS = (0.0, 1.0)


def _succeeded_acc(run: dict[str, Any]) -> float | None:
    if run["status"] != RunStatus.succeeded.value:
        return None
    return run["final_test_acc"]


def best_cell(runs: Sequence[dict[str, Any]], factors: Sequence[str]) -> dict[str, Any] | None:
    """The cell with the highest mean final test accuracy so far: {key, mean, n}."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for run in runs:
        acc = _succeeded_acc(run)
        if acc is not None:
            groups[cell_key(run["config"], factors)].append(acc)
    if not groups:
        return None
    key, accs = max(groups.items(), key=lambda kv: math.fsum(kv[1]) / len(kv[1]))
    return {"key": dict(zip(factors, key)), "mean": math.fsum(accs) / len(accs), "n": len(accs)}


def cell_key(config: dict[str, Any], factors: Sequence[str]) -> tuple:
    return tuple(config.get(f) for f in factors)


def summarize(
    runs: Sequence[dict[str, Any]], factors: Sequence[str], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """`runs` are dicts with config, status, final_test_acc, epochs_done, epochs_total,
    train_seconds. Cells pool seeds; only succeeded runs count towards the statistics."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[cell_key(run["config"], factors)].append(run)

    def accs(members: list[dict[str, Any]]) -> list[float]:
        return [
            m["final_test_acc"]
            for m in members
            if m["status"] == RunStatus.succeeded.value and m["final_test_acc"] is not None
        ]

    base_key = cell_key(baseline, factors) if baseline else next(iter(groups), None)
    base_accs = accs(groups.get(base_key, []))
    base_mean = _mean(base_accs)

    cells = []
    for key, members in groups.items():
        values = accs(members)
        cell = {
            "key": dict(zip(factors, key)),
            "run_ids": [m["id"] for m in members],
            "statuses": dict(Counter(m["status"] for m in members)),
            **describe(values, ACCURACY_BOUNDS),
            "is_baseline": key == base_key,
            "diff_from_baseline": None,
            "p_value": None,
            "p_holm": None,
        }
        if values and base_mean is not None:
            cell["diff_from_baseline"] = cell["mean"] - base_mean
            cell["p_value"] = None if key == base_key else welch_p(values, base_accs)
        paper = paper_figure(members[0]["config"])
        cell["paper_test_acc"] = paper
        cell["diff_from_paper"] = cell["mean"] - paper if paper is not None and values else None
        cell["paper_p_value"] = one_sample_p(values, paper) if paper is not None else None
        cell["paper_p_holm"] = None
        cells.append(cell)
    # Each table tests many cells at once: against the baseline, and against the report.
    for raw, adjusted in (("p_value", "p_holm"), ("paper_p_value", "paper_p_holm")):
        for cell, p in zip(cells, holm([c[raw] for c in cells])):
            cell[adjusted] = p

    return {
        "baseline": dict(zip(factors, base_key)) if base_key is not None else None,
        "best": best_cell(runs, factors),
        "cells": cells,
        "marginals": marginals(cells, factors),
        **progress(runs),
    }


def marginals(cells: Sequence[dict[str, Any]], factors: Sequence[str]) -> dict[str, list]:
    """Per factor value, the mean of the cell means of the cells with that value: every cell
    weighs the same, so a cell that lost runs (failed, still running) does not tilt it."""
    out = {}
    for factor in factors:
        by_value: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for cell in cells:
            by_value[cell["key"][factor]].append(cell)
        rows = []
        for value, members in by_value.items():
            means = [c["mean"] for c in members if c["mean"] is not None]
            mean = _mean(means)
            rows.append(
                {
                    "value": value,
                    "n": sum(c["n"] for c in members),
                    "cells": len(means),
                    "mean": mean,
                    "std": _std(means, mean) if len(means) > 1 else None,
                }
            )
        out[factor] = rows
    return out


def progress(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts, fraction of epochs done, and an ETA from the epochs timed so far."""
    counts = Counter(r["status"] for r in runs)
    total_epochs = sum(r["epochs_total"] for r in runs) or 1
    active_names = {s.value for s in ACTIVE}
    finished = {s.value for s in RunStatus} - active_names
    done_epochs = sum(
        r["epochs_total"] if r["status"] in finished else r["epochs_done"] for r in runs
    )
    timed_epochs = sum(r["epochs_done"] for r in runs)
    timed_seconds = sum(r["train_seconds"] or 0.0 for r in runs)
    eta = None
    left = total_epochs - done_epochs
    active = sum(counts.get(name, 0) for name in active_names)
    if active and timed_epochs:
        # Runs go in parallel on as many workers as are busy now (at least one).
        parallel = max(counts.get("running", 0), 1)
        eta = left * (timed_seconds / timed_epochs) / parallel
    return {
        "counts": {s.value: counts.get(s.value, 0) for s in RunStatus},
        "total_runs": len(runs),
        "progress": min(done_epochs / total_epochs, 1.0),
        "eta_seconds": eta if active else (0.0 if runs else None),
    }
