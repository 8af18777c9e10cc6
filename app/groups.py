"""Runs grouped by any of their fields, with n, mean, std and the 95 % t-interval of a
metric per group, and one field against a metric run by run: the runs page's "Group &
compare", over whatever runs its filters keep.

As in a grid's statistics, values come from succeeded runs only (a running run's best
accuracy is not its result); every run still counts in its group's `runs` and `statuses`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.analysis import ACCURACIES, LOSS_COLUMNS, METRIC_NAMES, settle_values
from app.stats import ACCURACY_BOUNDS, describe
from core.db import Run, RunStatus
from trainer.config import TrainConfig

# What runs are grouped by: any config field, and two facts of the run.
RUN_FIELDS = ("status", "sweep_id")
GROUP_FIELDS = (*TrainConfig.model_fields, *RUN_FIELDS)
METRICS = {
    **METRIC_NAMES,
    "best_epoch": "epoch of the best test accuracy",
    "train_seconds": "training time (s)",
}
MAX_BY = 4
# Every metric here is a fraction in 0..1 or a count or time; an interval never goes below 0.
NON_NEGATIVE = (0.0, math.inf)


def read_runs(session: Session, query: Select, metric: str) -> list[dict[str, Any]]:
    """id, config, status, sweep_id and `value` (the metric; None unless the run succeeded
    and has a finite value) of the runs `query` (a select of Run, filtered) keeps."""
    column = getattr(Run, metric) if metric not in LOSS_COLUMNS else None
    picked = [Run.id, Run.config, Run.status, Run.sweep_id]
    if column is not None:
        picked.append(column)
    rows = session.execute(query.with_only_columns(*picked).order_by(Run.id)).all()
    runs = [
        {
            "id": row[0],
            "config": row[1] or {},
            "status": RunStatus(row[2]).value,
            "sweep_id": row[3],
            "value": row[4] if column is not None else None,
        }
        for row in rows
    ]
    return settle_values(session, runs, metric)


def field_value(run: dict[str, Any], field: str) -> Any:
    return run[field] if field in RUN_FIELDS else run["config"].get(field)


def _order(value: Any) -> tuple:
    """Numbers in numeric order, then text, then missing values."""
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def group(runs: Sequence[dict[str, Any]], by: Sequence[str], metric: str) -> list[dict]:
    """One row per combination of values of `by` that some run has, in value order:
    {key, runs, statuses, n, mean, std, ci95} (n counts the values, see read_runs)."""
    members: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        members[tuple(field_value(run, f) for f in by)].append(run)
    bounds = ACCURACY_BOUNDS if metric in ACCURACIES else NON_NEGATIVE
    rows = []
    for key in sorted(members, key=lambda k: tuple(_order(v) for v in k)):
        found = members[key]
        values = [float(r["value"]) for r in found if r["value"] is not None]
        rows.append(
            {
                "key": dict(zip(by, key)),
                "runs": len(found),
                "statuses": dict(Counter(r["status"] for r in found)),
                **describe(values, bounds),
            }
        )
    return rows


def points(runs: Sequence[dict[str, Any]], x: str) -> list[dict[str, Any]]:
    """(run_id, x, y) of each run with a value of the metric."""
    return [
        {"run_id": r["id"], "x": field_value(r, x), "y": r["value"]}
        for r in runs
        if r["value"] is not None
    ]


def fields_of(text: str) -> list[str]:
    """The `by` parameter: field names separated by commas, in order, without repeats;
    ValueError naming the first unknown one."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if name not in GROUP_FIELDS:
            raise ValueError(f"unknown field {name[:50]!r}; one of {', '.join(GROUP_FIELDS)}")
    if not names:
        raise ValueError("at least one field name, e.g. activation")
    if len(names) > MAX_BY:
        raise ValueError(f"at most {MAX_BY} fields")
    return names
