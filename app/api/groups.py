"""/api/runs/groups and /api/runs/scatter: the runs a filter keeps, grouped by any fields
with each group's mean and 95 % interval of a metric, or one field against a metric."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import select

from app import groups
from app.api.deps import SessionDep, fast_json
from app.run_filters import RunFilterQuery
from core.db import Run

router = APIRouter(prefix="/api", tags=["runs"])

MetricName = Literal[tuple(groups.METRICS)]  # type: ignore[valid-type]
FieldName = Literal[groups.GROUP_FIELDS]  # type: ignore[valid-type]
COUNTED = "succeeded runs only"

DEFAULT_BY = ["activation"]
ByFields = Annotated[
    str | None,
    Query(
        max_length=400,
        description="fields separated by commas (at most 4): any config field, status or "
        "sweep_id; activation when not given",
        examples=["activation,lr_ratio"],
    ),
    AfterValidator(lambda text: None if text is None else groups.fields_of(text)),
]


class GroupOut(BaseModel):
    key: dict[str, Any] = Field(description="the group's value of each `by` field")
    runs: int = Field(description="runs of the group the filters keep, whatever their status")
    statuses: dict[str, int]
    n: int = Field(description="values of the metric: succeeded runs that have it")
    mean: float | None
    std: float | None = Field(description="sample standard deviation (n - 1); null for n < 2")
    ci95: list[float] | None = Field(
        description="95 % t-interval of the mean, clipped to 0..1 for accuracies (0.. else)"
    )


class GroupsOut(BaseModel):
    by: list[str]
    metric: MetricName
    metric_label: str
    counted: str
    total_runs: int
    groups: list[GroupOut]
    fields: list[str] = Field(description="every field runs can be grouped by")
    metrics: dict[str, str] = Field(description="every metric, with its name in words")


class PointOut(BaseModel):
    run_id: int
    x: Any
    y: float


class ScatterOut(BaseModel):
    x: FieldName
    y: MetricName
    metric_label: str
    counted: str
    total_runs: int
    points: list[PointOut]


@router.get("/runs/groups", response_model=GroupsOut)
def run_groups(
    session: SessionDep,
    filters: RunFilterQuery,
    by: ByFields = None,
    metric: MetricName = "final_test_acc",
):
    """The runs that GET /api/runs with the same filters lists, grouped by the `by` fields:
    per group the runs, their statuses, and n, mean, std and 95 % interval of `metric` over
    its succeeded runs. An unknown field or metric is a 422 naming it."""
    by = by or DEFAULT_BY
    runs = groups.read_runs(session, filters.apply(select(Run)), metric)
    return fast_json(
        {
            "by": by,
            "metric": metric,
            "metric_label": groups.METRICS[metric],
            "counted": COUNTED,
            "total_runs": len(runs),
            "groups": groups.group(runs, by, metric),
            "fields": list(groups.GROUP_FIELDS),
            "metrics": groups.METRICS,
        }
    )


@router.get("/runs/scatter", response_model=ScatterOut)
def run_scatter(
    session: SessionDep,
    filters: RunFilterQuery,
    x: FieldName = "lr",
    y: MetricName = "final_test_acc",
):
    """One point per succeeded run with a value of `y` among the runs the filters keep:
    its value of field `x` (a config field, status or sweep_id) against `y`."""
    runs = groups.read_runs(session, filters.apply(select(Run)), y)
    return fast_json(
        {
            "x": x,
            "y": y,
            "metric_label": groups.METRICS[y],
            "counted": COUNTED,
            "total_runs": len(runs),
            "points": groups.points(runs, x),
        }
    )
