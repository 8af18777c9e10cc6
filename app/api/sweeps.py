"""/api/sweeps: grids of runs, their per-cell statistics, progress and exports."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app import analysis, report
from app.api.deps import SessionDep, SettingsDep, SweepDep, fast_json
from app.exports import csv_response
from app.grid import (
    PRESETS,
    REPORT_BASELINE,
    GridError,
    SweepRequest,
    expand,
    field_value,
    normalised_grid,
)
from app.rate_limit import limit_submissions
from app.schemas import (
    GUARDED,
    NOT_FOUND,
    RATE_LIMITED,
    AnovaOut,
    CancelledOut,
    CellsOut,
    EffectsOut,
    EstimateOut,
    PowerOut,
    RetriedOut,
    SweepDetailOut,
    SweepOut,
    SweepPage,
)
from app.stats import best_cell, progress
from app.sweep_summary import sweep_summary
from app.text import ASCII_ONLY, db_text, has_other_digits
from app.throughput import Speed, images_per_epoch, measured_speed
from core import lifecycle, sweeps
from core.db import ACTIVE, RETRYABLE, Run, RunStatus, Sweep
from core.queue import ring
from trainer.config import TrainConfig

router = APIRouter(prefix="/api", tags=["sweeps"])


class RunIds(BaseModel):
    # Strict: lax mode would read `[true]` as run 1; unknown keys are a 422, as elsewhere.
    model_config = ConfigDict(strict=True, extra="forbid")

    # Bounded like the path ids: SQLite cannot bind integers past 64 bits (that was a 500).
    run_ids: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(None, max_length=10_000)


class SweepIn(SweepRequest):
    """A sweep as POST /api/sweeps takes it: a name that the database can store."""

    name: db_text(200) | None = None


def _sweep_runs(session, sweep_id: int) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id)))


# What a sweep listing reads of each run.
PROGRESS_COLUMNS = ("id", "sweep_id", "status", "epochs_done", "epochs_total", "train_seconds")


def _run_facts(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "config": run.config,
        "status": RunStatus(run.status).value,
        "final_test_acc": run.final_test_acc,
        "epochs_done": run.epochs_done,
        "epochs_total": run.epochs_total,
        "train_seconds": run.train_seconds,
    }


def _sweep_head(sweep: Sweep, run_ids: list[int]) -> dict[str, Any]:
    grid = sweep.grid
    return {
        "id": sweep.id,
        "name": sweep.name,
        "preset": sweep.preset,
        "created_at": sweep.created_at,
        "base": sweep.base,
        "grid": grid,
        "factors": list(grid),
        "seeds": sweep.seeds,
        "run_ids": run_ids,
    }


def _validation_error(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


@router.post(
    "/sweeps", status_code=201, response_model=SweepOut, responses={**GUARDED, **RATE_LIMITED}
)
def create_sweep(body: SweepIn, request: Request, session: SessionDep, settings: SettingsDep):
    """A grid (field -> values) times seeds, or `{"preset": "report"}` for the report's 36
    cells. Nothing is stored unless every cell's config is valid."""
    count = body.run_count()
    if count > settings.max_sweep_runs:
        raise _validation_error(
            [
                {
                    "loc": ["body", "grid"],
                    "msg": f"grid has {count} runs; the limit is {settings.max_sweep_runs} "
                    "(MAX_SWEEP_RUNS)",
                    "type": "value_error",
                }
            ]
        )
    try:
        configs = expand(body)
        grid = normalised_grid(body, configs)
    except GridError as exc:
        raise _validation_error(exc.errors) from None
    limit_submissions(request, len(configs), settings)
    name = body.name or (body.preset or " × ".join(grid)) or "sweep"
    sweep, runs = sweeps.create_sweep(
        session,
        name=name,
        preset=body.preset,
        # Base fields that the grid varies apply to no run, so no cell validated them: they
        # are not stored (an unvalidated 10**30 there made every sweep listing answer 500).
        base={k: v for k, v in body.base.items() if k not in grid},
        grid=grid,
        seeds=body.seeds,
        configs=configs,
    )
    ring([r.id for r in runs])  # a broker that is down: stored, and sent once it is back
    head = _sweep_head(sweep, [r.id for r in runs])
    return fast_json({**head, **progress([_run_facts(r) for r in runs])}, 201)


@router.post("/sweeps/estimate", response_model=EstimateOut, responses=GUARDED)
def estimate_sweep(body: SweepIn, session: SessionDep, settings: SettingsDep):
    """How many runs a sweep would make and how long they would train on one worker, at the
    speed the workers measured for the same model width (null while none is measured)."""
    count = body.run_count()
    if count > settings.max_sweep_runs:
        configs = []
    else:
        try:
            configs = expand(body)
        except GridError as exc:
            raise _validation_error(exc.errors) from None
    seconds: float | None = 0.0
    images = 0
    basis = set()
    epochs = 0
    speeds: dict[int, Speed | None] = {}
    for config in configs:
        train, test = images_per_epoch(config)
        if config.width not in speeds:  # one query per distinct model, not per cell
            speeds[config.width] = measured_speed(session, config.width)
        speed = speeds[config.width]
        images += config.epochs * (train + test)
        epochs += config.epochs
        if speed is None:
            basis.add(NOT_MEASURED.format(width=config.width))
            seconds = None
        else:
            basis.add(speed.basis)
            if seconds is not None:
                seconds += config.epochs * train / speed.images_per_second
    return {
        "runs": count,
        "max_runs": settings.max_sweep_runs,
        "epochs": epochs,
        "images": images,
        "estimated_gpu_seconds": seconds if configs else None,
        "images_per_second": images / seconds if seconds else None,
        "basis": sorted(basis),
    }


# No speed is assumed: a GPU figure is 30x off on a CPU-only host.
NOT_MEASURED = "no run at width {width} timed yet: the first epoch of any run gives the speed"


@router.get("/sweeps", response_model=SweepPage)
def list_sweeps(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    """Sweeps, newest first, with their progress: three queries whatever the page size, and
    only the run columns that progress needs (not configs or results)."""
    total = session.scalar(select(func.count(Sweep.id)))
    sweeps = list(
        session.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(limit).offset(offset))
    )
    facts: dict[int, list[dict[str, Any]]] = {sweep.id: [] for sweep in sweeps}
    rows = session.execute(
        select(*(getattr(Run, c) for c in PROGRESS_COLUMNS))
        .where(Run.sweep_id.in_(list(facts)))
        .order_by(Run.id)
    )
    for row in rows:
        run = dict(zip(PROGRESS_COLUMNS, row))
        run["status"] = RunStatus(run["status"]).value
        facts[run["sweep_id"]].append(run)
    # The best cell needs the factor values, of succeeded runs only: one more query.
    finished: dict[int, list[dict[str, Any]]] = {sweep.id: [] for sweep in sweeps}
    rows = session.execute(
        select(Run.sweep_id, Run.config, Run.final_test_acc).where(
            Run.sweep_id.in_(list(facts)), Run.status == RunStatus.succeeded.value
        )
    )
    for sweep_id, config, acc in rows:
        finished[sweep_id].append(
            {"config": config, "final_test_acc": acc, "status": RunStatus.succeeded.value}
        )
    items = [
        {
            **_sweep_head(sweep, [r["id"] for r in facts[sweep.id]]),
            **progress(facts[sweep.id]),
            "best": best_cell(finished[sweep.id], list(sweep.grid)),
        }
        for sweep in sweeps
    ]
    return fast_json({"items": items, "total": total, "limit": limit, "offset": offset})


def _bad_baseline(msg: str) -> RequestValidationError:
    # The documented 422 shape (a list naming the parameter), like every other invalid input.
    return _validation_error([{"loc": ["query", "baseline"], "msg": msg, "type": "value_error"}])


def _parse_baseline(text: str | None, factors: list[str]) -> dict[str, Any] | None:
    """'activation:relu,lr_ratio:2:1:1' -> {"activation": "relu", "lr_ratio": "2:1:1"}."""
    if not text:
        return None
    baseline: dict[str, Any] = {}
    for part in text.split(","):
        field, sep, value = part.partition(":")
        if not sep or field not in factors:
            raise _bad_baseline(f"{field[:100]!r} is not a factor of this sweep")
        if has_other_digits(value):  # the trainer's parsers would read "٣:1:1" as 3:1:1
            raise _bad_baseline(f"{value[:100]!r}: {ASCII_ONLY}")
        baseline[field] = value
    return baseline


def _coerce(
    baseline: dict[str, Any], grid: dict[str, list[Any]], base: dict[str, Any]
) -> dict[str, Any]:
    """Query values are text; compare them with the grid's values as validated configs hold
    them ("0.00005" is lr 5e-05, "02:1:1" is 2:1:1), not as strings."""
    out = {}
    for field, text in baseline.items():
        wanted = field_value(field, text, base)
        if wanted is None and text.lower() != text:
            wanted = field_value(field, text.lower(), base)  # "ReLU" names relu
        # The run configs hold validated values; so the cells key on them (old rows too).
        values = [field_value(field, v, base) for v in grid.get(field, [])]
        if wanted is None or wanted not in values:
            raise _bad_baseline(f"{text[:100]!r} is not a value of {field!r}")
        out[field] = wanted
    return out


@router.get(
    "/sweeps/{sweep_id:int}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND},
)
def sweep_csv(sweep: SweepDep, session: SessionDep):
    return csv_response(_sweep_runs(session, sweep.id), f"sweep-{sweep.id}.csv")


@router.get("/sweeps/{sweep_id}", response_model=SweepDetailOut, responses=NOT_FOUND)
def get_sweep(
    sweep: SweepDep,
    session: SessionDep,
    baseline: Annotated[str | None, Query(max_length=500, examples=["activation:relu"])] = None,
):
    """The sweep, every cell's status and statistics, marginal means, progress and ETA."""
    factors = list(sweep.grid)
    chosen = _parse_baseline(baseline, factors)
    if chosen is not None:
        chosen = _coerce(chosen, sweep.grid, sweep.base)
    elif sweep.preset == "report":
        chosen = REPORT_BASELINE
    summary = sweep_summary(session, sweep.id, factors, chosen)
    run_ids = [run_id for cell in summary["cells"] for run_id in cell["run_ids"]]
    return fast_json({**_sweep_head(sweep, sorted(run_ids)), **summary})


@router.get("/sweeps/{sweep_id}/cells", response_model=CellsOut, responses=NOT_FOUND)
def sweep_cells(
    sweep: SweepDep,
    session: SessionDep,
    by: Annotated[str, Query(max_length=500, examples=["lr_ratio,activation"])] = "",
):
    """Cell statistics over some of the sweep's factors only, pooling the others (and seeds):
    what a heatmap of two factors shows. `by` is a comma-separated list of factors."""
    factors = list(sweep.grid)
    chosen = [f for f in by.split(",") if f]
    unknown = [f for f in chosen if f not in factors]
    if unknown:
        raise _validation_error(
            [{"loc": ["query", "by"], "msg": f"{unknown[0][:100]!r} is not a factor of this sweep",
              "type": "value_error"}]
        )  # fmt: skip
    summary = sweep_summary(session, sweep.id, chosen, None)
    return fast_json({"by": chosen, "cells": summary["cells"]})


def _selected(session, sweep_id: int, body: RunIds | None, statuses) -> list[int]:
    query = select(Run.id).where(
        Run.sweep_id == sweep_id, Run.status.in_([s.value for s in statuses])
    )
    if body is not None and body.run_ids is not None:
        query = query.where(Run.id.in_(body.run_ids))
    return list(session.scalars(query))


@router.post(
    "/sweeps/{sweep_id}/cancel", response_model=CancelledOut, responses={**NOT_FOUND, **GUARDED}
)
def cancel_sweep(
    sweep: SweepDep, session: SessionDep, body: Annotated[RunIds | None, Body()] = None
):
    """Cancels the sweep's queued and running runs (or only `run_ids` among them)."""
    ids = [i for i in _selected(session, sweep.id, body, ACTIVE) if lifecycle.cancel(session, i)]
    return {"cancelled": ids}


@router.post(
    "/sweeps/{sweep_id}/retry", response_model=RetriedOut, responses={**NOT_FOUND, **GUARDED}
)
def retry_sweep(
    sweep: SweepDep, session: SessionDep, body: Annotated[RunIds | None, Body()] = None
):
    """Re-queues the sweep's failed, cancelled and lost runs (or only `run_ids` among them)."""
    ids = [i for i in _selected(session, sweep.id, body, RETRYABLE) if lifecycle.retry(session, i)]
    ring(ids)
    return {"retried": ids}


@router.get("/presets")
def presets():
    """Named grids; 'report' is the study's 3 x 4 x 3 table."""
    return {
        name: {
            "grid": grid,
            "runs_per_seed": math.prod(len(v) for v in grid.values()),
            "baseline": REPORT_BASELINE,
        }
        for name, grid in PRESETS.items()
    }


@router.get("/config-schema")
def config_schema():
    """The trainer config's JSON schema: every field with its default, range and help."""
    return TrainConfig.model_json_schema()


# ---------------------------------------------------------------- the grid's analysis

MetricQuery = Annotated[
    analysis.MetricName,
    Query(description="final_test_acc (default), best_test_acc, final_train_loss, final_test_loss"),
]


def _reference(sweep, baseline: str | None) -> dict[str, Any] | None:
    """The levels effects are measured from: ?baseline=, else the report's, else the first."""
    chosen = _parse_baseline(baseline, list(sweep.grid))
    if chosen is not None:
        return _coerce(chosen, sweep.grid, sweep.base)
    return REPORT_BASELINE if sweep.preset == "report" else None


@router.get("/sweeps/{sweep_id}/anova", response_model=AnovaOut, responses=NOT_FOUND)
def sweep_anova(sweep: SweepDep, session: SessionDep, metric: MetricQuery = "final_test_acc"):
    """Main effects and two-way interactions of the varying factors, type II sums of squares,
    seeds as replicates; the additive model when there is one run per cell."""
    runs = analysis.sweep_runs(session, sweep.id, metric)
    return fast_json(analysis.anova(runs, sweep.grid, metric))


@router.get("/sweeps/{sweep_id}/effects", response_model=EffectsOut, responses=NOT_FOUND)
def sweep_effects(
    sweep: SweepDep,
    session: SessionDep,
    metric: MetricQuery = "final_test_acc",
    baseline: Annotated[str | None, Query(max_length=500, examples=["activation:relu"])] = None,
):
    """Each level's difference from the reference level with a 95 % interval, and the
    interaction plots' data (mean and interval per pair of levels of two factors)."""
    runs = analysis.sweep_runs(session, sweep.id, metric)
    return fast_json(analysis.analyse(sweep, runs, metric, _reference(sweep, baseline)))


@router.get("/sweeps/{sweep_id}/power", response_model=PowerOut, responses=NOT_FOUND)
def sweep_power(
    sweep: SweepDep,
    session: SessionDep,
    metric: MetricQuery = "final_test_acc",
    difference: Annotated[
        float, Query(gt=0, le=100, description="Accuracy: percentage points; loss: its units.")
    ] = 0.2,
    alpha: Annotated[float, Query(gt=0, le=0.5)] = 0.05,
    power: Annotated[float, Query(gt=0, lt=1)] = 0.8,
):
    """Seeds per cell needed to tell two levels of each factor `difference` apart."""
    if power <= alpha:
        raise _validation_error(
            [{"loc": ["query", "power"], "msg": "power must be above alpha", "type": "value_error"}]
        )
    runs = analysis.sweep_runs(session, sweep.id, metric)
    fitted = analysis.fit(runs, sweep.grid)
    units = difference / 100 if metric in analysis.ACCURACIES else difference
    answer = analysis.seeds_needed(fitted, sweep.grid, runs, len(sweep.seeds), units, alpha, power)
    return fast_json({"metric": metric, **answer})


def _study(sweep: Sweep, session, metric: str, baseline: str | None) -> report.Study:
    runs = analysis.sweep_runs(session, sweep.id, metric)
    return report.build(sweep, runs, metric, _reference(sweep, baseline))


def _download(body: str, media_type: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/sweeps/{sweep_id}/report.md",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}}, **NOT_FOUND},
)
def sweep_report(
    sweep: SweepDep,
    session: SessionDep,
    metric: MetricQuery = "final_test_acc",
    baseline: Annotated[str | None, Query(max_length=500, examples=["activation:relu"])] = None,
):
    """The study as Markdown: a summary in sentences, the question, fixed settings, factors,
    cells (with the report's own figures where it has the cell), the ANOVA table with a
    sentence per term, effects with intervals, interaction means, the seeds needed (0.2
    points, alpha 0.05, power 0.8), the best cell, the failed runs with their errors, the
    code, versions, devices and training time, and every table again as CSV."""
    text = report.markdown(_study(sweep, session, metric, baseline))
    return _download(text, "text/markdown; charset=utf-8", f"grid-{sweep.id}-report.md")


@router.get(
    "/sweeps/{sweep_id}/report.html",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, **NOT_FOUND},
)
def sweep_report_html(
    sweep: SweepDep,
    session: SessionDep,
    metric: MetricQuery = "final_test_acc",
    baseline: Annotated[str | None, Query(max_length=500, examples=["activation:relu"])] = None,
):
    """The same report as one self-contained HTML file (a download): the charts (cell
    means, effects with intervals, one interaction plot per pair of factors) are drawn by
    plotly.js inlined in the file, so it opens offline, from disk."""
    text = report.html(_study(sweep, session, metric, baseline))
    return _download(text, "text/html; charset=utf-8", f"grid-{sweep.id}-report.html")
