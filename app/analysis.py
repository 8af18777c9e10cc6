"""The grid's analysis: ANOVA with type II sums of squares, each factor's effect with a 95 %
interval, interaction data, and how many seeds per cell would settle a given difference.

Seeds are the replicates; only succeeded runs count. statsmodels fits the models
(`ols` + `anova_lm(typ=2)`: type II sums stay right when failed runs leave cells unequal)
and sizes the samples (`TTestIndPower`). It is imported inside the functions that use it:
it takes a second or two to import, which every process that loads the routers would pay.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from scipy import stats
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.stats import ACCURACY_BOUNDS, describe
from core.db import Metric, Run, RunStatus, Sweep

MetricName = Literal["final_test_acc", "best_test_acc", "final_train_loss", "final_test_loss"]
ACCURACIES = ("final_test_acc", "best_test_acc")
# Loss columns of the last recorded epoch (the runs table keeps only accuracies).
LOSS_COLUMNS = {"final_train_loss": Metric.train_loss, "final_test_loss": Metric.test_loss}

ONE_WAY = "one-way"
TWO_WAY = "two-way interactions"
ADDITIVE = "additive (one run per cell: interactions left as error)"
METRIC_NAMES = {
    "final_test_acc": "final test accuracy",
    "best_test_acc": "best test accuracy",
    "final_train_loss": "final train loss",
    "final_test_loss": "final test loss",
}
ADDITIVE_EMPTY = "additive (cells without a finished run: interactions left as error)"
CI_METHOD = (
    "difference of marginal means (each cell weighing the same), 95 % t-interval from the "
    "ANOVA model's residual variance and residual df"
)


# ---------------------------------------------------------------- reading the runs


def sweep_runs(session: Session, sweep_id: int, metric: MetricName) -> list[dict[str, Any]]:
    """Every run of the sweep: id, config, status, error, train_seconds, worker, environment
    and `value`, the metric (None unless the run succeeded and has it)."""
    runs = [
        {
            "id": run.id,
            "config": run.config,
            "status": RunStatus(run.status).value,
            "error": run.error,
            "train_seconds": run.train_seconds,
            "worker": run.worker,
            "environment": run.environment,
            "value": getattr(run, metric) if metric in ACCURACIES else None,
        }
        for run in session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id))
    ]
    return settle_values(session, runs, metric)


def settle_values(session: Session, runs: list[dict], metric: str) -> list[dict]:
    """Each run's "value" as the statistics take it: a loss read from the run's last epoch,
    and None unless the run succeeded with a finite value."""
    if metric in LOSS_COLUMNS:
        ids = [r["id"] for r in runs if r["status"] == RunStatus.succeeded.value]
        losses = final_losses(session, ids, LOSS_COLUMNS[metric]) if ids else {}
        for run in runs:
            run["value"] = losses.get(run["id"])
    for run in runs:
        value = run["value"]
        if run["status"] != RunStatus.succeeded.value or value is None or not math.isfinite(value):
            run["value"] = None
    return runs


def final_losses(session: Session, run_ids: list[int], column) -> dict[int, float | None]:
    if not run_ids:
        return {}
    last = (
        select(Metric.run_id, func.max(Metric.epoch).label("epoch"))
        .where(Metric.run_id.in_(run_ids))
        .group_by(Metric.run_id)
        .subquery()
    )
    rows = session.execute(
        select(Metric.run_id, column).join(
            last, (Metric.run_id == last.c.run_id) & (Metric.epoch == last.c.epoch)
        )
    )
    return {run_id: value for run_id, value in rows}


# ---------------------------------------------------------------- the model


def varying(grid: dict[str, list[Any]]) -> list[str]:
    return [f for f, values in grid.items() if len(values) > 1]


def _level(value: Any, values: list[Any]) -> int | None:
    for i, v in enumerate(values):
        if v == value:
            return i
    return None


def observations(runs: Sequence[dict[str, Any]], grid: dict[str, list[Any]]) -> list[dict]:
    """Finished runs as {levels: (index per varying factor), value}, runs whose config holds
    a value the grid does not list left out (none should)."""
    factors = varying(grid)
    out = []
    for run in runs:
        if run["value"] is None:
            continue
        levels = tuple(_level(run["config"].get(f), grid[f]) for f in factors)
        if None not in levels:
            out.append({"levels": levels, "value": float(run["value"]), "run": run})
    return out


def _missing_levels(obs: list[dict], grid: dict[str, list[Any]]) -> str | None:
    """Why the ANOVA cannot run: a level with fewer than two finished runs; else None."""
    for i, factor in enumerate(varying(grid)):
        counts = defaultdict(int)
        for o in obs:
            counts[o["levels"][i]] += 1
        for j, value in enumerate(grid[factor]):
            if counts[j] < 2:
                return (
                    f"Too few finished runs: {factor} = {value} has {counts[j]}; the analysis "
                    "needs at least 2 at every level of every factor that varies"
                )
    return None


def _choose_model(obs: list[dict], grid: dict[str, list[Any]]) -> str:
    factors = varying(grid)
    if len(factors) == 1:
        return ONE_WAY
    cells = defaultdict(int)
    for o in obs:
        cells[o["levels"]] += 1
    if max(cells.values()) < 2:
        return ADDITIVE
    # Every pair of levels of every two factors must be seen for its interaction to exist.
    for a, b in itertools.combinations(range(len(factors)), 2):
        seen = {(o["levels"][a], o["levels"][b]) for o in obs}
        if len(seen) < len(grid[factors[a]]) * len(grid[factors[b]]):
            return ADDITIVE_EMPTY
    return TWO_WAY


def _formula(k: int, model: str) -> str:
    terms = [f"C(f{i})" for i in range(k)]
    if model == TWO_WAY:
        terms += [f"C(f{a}):C(f{b})" for a, b in itertools.combinations(range(k), 2)]
    return "y ~ " + " + ".join(terms)


def _term_names(factors: list[str]) -> dict[str, list[str]]:
    names = {f"C(f{i})": [f] for i, f in enumerate(factors)}
    for a, b in itertools.combinations(range(len(factors)), 2):
        names[f"C(f{a}):C(f{b})"] = [factors[a], factors[b]]
    return names


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def fit(runs: Sequence[dict[str, Any]], grid: dict[str, list[Any]]) -> dict[str, Any]:
    """The ANOVA of the finished runs: {model, n, rows, residual, note, obs}; rows [] and a
    note saying why when there is nothing to analyse."""
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    factors = varying(grid)
    obs = observations(runs, grid)
    empty = {"model": None, "n": len(obs), "rows": [], "residual": None, "obs": obs}
    if not factors:
        return {**empty, "note": "No factor varies in this grid: there is nothing to compare"}
    why = _missing_levels(obs, grid)
    if why:
        return {**empty, "note": why}
    model = _choose_model(obs, grid)
    # Columns f0, f1... hold level labels L0, L1...: names and values never reach the parser.
    frame = {f"f{i}": [f"L{o['levels'][i]}" for o in obs] for i in range(len(factors))}
    frame["y"] = [o["value"] for o in obs]
    result = ols(_formula(len(factors), model), data=frame).fit()
    if result.df_resid < 1:
        return {**empty, "note": "Too few finished runs to leave any residual degrees of freedom"}
    table = anova_lm(result, typ=2)
    if not all(math.isfinite(x) for x in table["sum_sq"]):
        return {**empty, "note": "The model could not be estimated from these runs"}
    ss_res, df_res = float(result.ssr), int(round(result.df_resid))
    ss_total = float(result.centered_tss)
    names = _term_names(factors)
    rows = []
    for term, row in table.iterrows():
        if term == "Residual":
            continue
        ss = float(row["sum_sq"])
        rows.append(
            {
                "term": ":".join(names[term]),
                "factors": names[term],
                "sum_sq": ss,
                "df": int(round(row["df"])),
                "F": _finite(row["F"]),
                "p": _finite(row["PR(>F)"]),
                "partial_eta_sq": ss / (ss + ss_res) if ss + ss_res > 0 else None,
                "eta_sq": ss / ss_total if ss_total > 0 else None,
            }
        )
    ms = ss_res / df_res
    return {
        "model": model,
        "n": len(obs),
        "rows": rows,
        "residual": {"sum_sq": ss_res, "df": df_res, "mean_sq": ms, "sd": math.sqrt(ms)},
        "note": _model_note(model),
        "obs": obs,
    }


def _model_note(model: str) -> str:
    if model == TWO_WAY:
        return (
            "Main effects and two-way interactions, seeds as replicates; type II sums of "
            "squares (right for unequal cells); higher interactions, if any, are in the error"
        )
    if model == ADDITIVE:
        return (
            "One run per cell: interactions cannot be told from noise, so they are left in "
            "the error term; add seeds to test them"
        )
    if model == ADDITIVE_EMPTY:
        return (
            "Some combinations of levels have no finished run, so interactions cannot be "
            "estimated and are left in the error term"
        )
    return "One factor varies: a one-way ANOVA, seeds as replicates"


def anova(runs: Sequence[dict[str, Any]], grid: dict[str, list[Any]], metric: str) -> dict:
    result = fit(runs, grid)
    return {"metric": metric, **{k: v for k, v in result.items() if k != "obs"}}


# ---------------------------------------------------------------- effects


def _cell_means(obs: list[dict]) -> dict[tuple, tuple[float, int]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for o in obs:
        groups[o["levels"]].append(o["value"])
    return {k: (math.fsum(v) / len(v), len(v)) for k, v in groups.items()}


def _marginal(cells: dict[tuple, tuple[float, int]], i: int, level: int):
    """Mean of the cell means at that level, and the sum of 1/n over those cells / K²: the
    factor by which the residual variance scales into the marginal mean's variance."""
    members = [(m, n) for key, (m, n) in cells.items() if key[i] == level]
    if not members:
        return None, None
    k = len(members)
    return math.fsum(m for m, _ in members) / k, math.fsum(1 / n for _, n in members) / k**2


def effects(
    fitted: dict[str, Any],
    grid: dict[str, list[Any]],
    reference: dict[str, Any] | None,
    metric: str,
) -> list[dict[str, Any]]:
    """Per varying factor, each level's difference from the reference level with its 95 %
    interval (CI_METHOD). Intervals are null when there is no model to take them from."""
    cells = _cell_means(fitted["obs"])
    residual = fitted["residual"]
    t = float(stats.t.ppf(0.975, residual["df"])) if residual else None
    out = []
    for i, factor in enumerate(varying(grid)):
        ref_value = (reference or {}).get(factor, grid[factor][0])
        ref = _level(ref_value, grid[factor])
        ref = 0 if ref is None else ref
        ref_mean, ref_scale = _marginal(cells, i, ref)
        levels = []
        for j, value in enumerate(grid[factor]):
            if j == ref:
                continue
            mean, scale = _marginal(cells, i, j)
            row = {"level": value, "mean": mean, "diff": None, "ci95": None, "text": None}
            if mean is not None and ref_mean is not None:
                row["diff"] = mean - ref_mean
                if residual:
                    half = t * math.sqrt(residual["mean_sq"] * (scale + ref_scale))
                    row["ci95"] = [row["diff"] - half, row["diff"] + half]
                row["text"] = effect_sentence(value, grid[factor][ref], row, metric)
            levels.append(row)
        out.append(
            {
                "factor": factor,
                "reference": grid[factor][ref],
                "ref_mean": ref_mean,
                "levels": levels,
            }
        )
    return out


def fmt_diff(x: float, metric: str) -> str:
    """Accuracies in percentage points (0.002 -> "0.20"), losses as they are; a true minus."""
    text = f"{x * 100:.2f}" if metric in ACCURACIES else f"{x:.4f}"
    return text.replace("-", "\u2212")


def effect_sentence(level: Any, ref: Any, row: dict[str, Any], metric: str) -> str:
    unit = " points" if metric in ACCURACIES else ""
    text = f"{level} \u2212 {ref}: {fmt_diff(row['diff'], metric)}{unit}"
    if row["ci95"]:
        lo, hi = (fmt_diff(x, metric) for x in row["ci95"])
        text += f" [{lo}, {hi}]"
        if row["ci95"][0] <= 0 <= row["ci95"][1]:
            text += " (the interval includes 0: no difference shown)"
    return text


def interactions(
    runs: Sequence[dict[str, Any]], grid: dict[str, list[Any]], metric: str
) -> list[dict[str, Any]]:
    """For each pair of varying factors: the metric's mean and 95 % t-interval over the runs
    at each level of one (a line) across the levels of the other (the x axis), the other
    factors pooled."""
    factors = varying(grid)
    obs = observations(runs, grid)
    bounds = ACCURACY_BOUNDS if metric in ACCURACIES else None
    out = []
    for a, b in itertools.combinations(range(len(factors)), 2):
        groups: dict[tuple, list[float]] = defaultdict(list)
        for o in obs:
            groups[(o["levels"][a], o["levels"][b])].append(o["value"])
        series = []
        for i, value in enumerate(grid[factors[a]]):
            points = [
                {"level": x, **describe(groups.get((i, j), []), bounds)}
                for j, x in enumerate(grid[factors[b]])
            ]
            series.append({"level": value, "points": points})
        out.append({"factor": factors[a], "across": factors[b], "series": series})
    return out


# ---------------------------------------------------------------- seeds needed


def seeds_needed(
    fitted: dict[str, Any],
    grid: dict[str, list[Any]],
    runs: Sequence[dict[str, Any]],
    seeds: int,
    difference: float,
    alpha: float,
    power: float,
) -> dict[str, Any]:
    """Per varying factor: the seeds per cell a two-sided two-sample t-test needs to tell two
    of its levels `difference` apart (metric units) at `alpha` with `power`, taking the
    residual sd as the runs' spread. Each level pools the cells sharing it, so the runs per
    level are seeds x cells per level."""
    from statsmodels.stats.power import TTestIndPower

    residual = fitted["residual"]
    cells = math.prod(len(v) for v in grid.values())
    timed = [r["train_seconds"] for r in runs if r["value"] is not None and r["train_seconds"]]
    run_seconds = math.fsum(timed) / len(timed) if timed else None
    out = {"difference": difference, "alpha": alpha, "power": power, "seeds": seeds}
    out |= {"cells": cells, "mean_run_seconds": run_seconds, "factors": []}
    if not residual:
        return {**out, "residual_sd": None, "note": fitted["note"]}
    sd = residual["sd"]
    out["residual_sd"] = sd
    effect = difference / sd if sd > 0 else math.inf
    if not math.isfinite(effect):
        return {**out, "note": "The residual sd is 0: the runs you have already tell levels apart"}
    solver = TTestIndPower()
    for factor in varying(grid):
        per_level = cells // len(grid[factor])
        n_level = _solve(solver, effect, alpha, power)
        need = max(1, math.ceil(n_level / per_level))
        extra = max(0, need - seeds)
        seconds = extra * cells * run_seconds if run_seconds is not None else None
        out["factors"].append(
            {
                "factor": factor,
                "cells_per_level": per_level,
                "effect_size": effect,
                "runs_per_level": n_level,
                "seeds_per_cell": need,
                "extra_seeds": extra,
                "extra_runs": extra * cells,
                "extra_train_seconds": seconds,
            }
        )
    out["note"] = (
        "Cohen's d = difference / residual sd; n per level from statsmodels' TTestIndPower "
        "(two-sided), spread over the cells that share a level"
    )
    return out


def _solve(solver, effect: float, alpha: float, power: float) -> float:
    # The solver does not converge below two runs per group; a huge effect needs two.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = solver.solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    n = float(n)
    return n if math.isfinite(n) and n >= 2 else 2.0


def failed_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    finished = {RunStatus.succeeded.value, RunStatus.queued.value, RunStatus.running.value}
    return [
        {"id": r["id"], "status": r["status"], "error": r["error"]}
        for r in runs
        if r["status"] not in finished
    ]


def analyse(sweep: Sweep, runs: list[dict], metric: str, reference: dict | None) -> dict:
    """The effects response: the model's note, effects, interaction data."""
    fitted = fit(runs, sweep.grid)
    return {
        "metric": metric,
        "model": fitted["model"],
        "method": CI_METHOD,
        "residual": fitted["residual"],
        "effects": effects(fitted, sweep.grid, reference, metric),
        "interactions": interactions(runs, sweep.grid, metric),
        "note": fitted["note"],
    }
