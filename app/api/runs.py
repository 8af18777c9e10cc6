"""/api/runs: submit, list, inspect, cancel, retry, delete and export runs."""

from __future__ import annotations

import csv
import io
import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator, Field
from sqlalchemy import func, select

from app.api.deps import RunDep, SessionDep, SettingsDep, fast_json
from app.curves import curves_json, metric_rows, stamps
from app.exports import csv_columns, csv_response
from app.rate_limit import limit_submissions
from app.run_actions import remove_run
from app.run_filters import RunFilterQuery, SortKey, ordered
from app.run_view import listed_runs, listed_runs_query, run_out
from app.schemas import (
    CONFLICT,
    GUARDED,
    NOT_FOUND,
    RATE_LIMITED,
    ManyMetricsColumnsOut,
    ManyMetricsOut,
    RunAttemptsOut,
    RunLogsOut,
    RunMetricsColumnsOut,
    RunMetricsOut,
    RunOut,
    RunPage,
    RunPatch,
    TrainConfigIn,
)
from app.text import ASCII_ONLY
from app.throughput import first_eta, measured_speed
from core import lifecycle
from core.db import METRIC_FIELDS, Run, RunLog, RunStatus
from core.queue import ring
from core.store import open_store

router = APIRouter(prefix="/api", tags=["runs"])


@router.post("/runs", status_code=201, response_model=RunOut, responses={**GUARDED, **RATE_LIMITED})
def create_run(config: TrainConfigIn, request: Request, session: SessionDep, settings: SettingsDep):
    limit_submissions(request, 1, settings)
    run = lifecycle.new_run(config)
    session.add(run)
    session.commit()
    ring([run.id])  # a broker that is down: stored, and sent once it is back
    return fast_json(run_out(run), 201)


RUN_IDS = r"^\s*[0-9]{1,18}(\s*,\s*[0-9]{1,18})*\s*$"
MAX_CURVES = 500


def _id_list(text: str) -> list[int]:
    return list(dict.fromkeys(int(part) for part in text.split(",")))


def _run_id_list(text: object) -> object:
    """The check of `run_ids`, with the published pattern in ASCII digits: pydantic's
    pattern check would take a `\\d` such as "𑽑", which int() refuses."""
    if not isinstance(text, str):
        return text
    if not re.fullmatch(RUN_IDS, text):
        raise ValueError(
            f"{ASCII_ONLY}: run ids separated by commas, like 1,2,3 (18 digits at most)"
        )
    if len(_id_list(text)) > MAX_CURVES:
        raise ValueError(f"at most {MAX_CURVES} run ids")
    return text


RunIdList = Annotated[
    str,
    Field(max_length=10_000, json_schema_extra={"pattern": RUN_IDS}),
    BeforeValidator(_run_id_list),
]


def _with_speeds(session, runs: list[Run], settings, **kwargs) -> list[dict]:
    """run_out for each run, with its measured training speed (mean img/s over its epochs,
    kept on the run as epochs are recorded) and, for a run still in its first epoch, an ETA
    from the speed its model was measured at on the workers (the first epoch's own time is
    not known before it ends)."""
    by_width: dict[int, object] = {}
    out = []
    store = open_store(settings)
    for run in runs:
        item = run_out(run, store=store, **kwargs)
        item["images_per_second"] = run.images_per_second
        if run.status == RunStatus.running and run.epochs_done == 0:
            width = int(run.config.get("width", 64))
            if width not in by_width:
                by_width[width] = measured_speed(session, width)
            item["eta_seconds"] = first_eta(run, by_width[width])
        out.append(item)
    return out


@router.get("/runs", response_model=RunPage)
def list_runs(
    session: SessionDep,
    settings: SettingsDep,
    filters: RunFilterQuery,
    sort: SortKey = "-id",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    run_ids: Annotated[RunIdList | None, Query(examples=["1,2,3"])] = None,
):
    """Runs, newest first by default. `status` may repeat (`?status=queued&status=running`);
    `tag` keeps runs with that tag; `q` keeps runs that match every word of it: an id, text
    in the name, note, tags or factors, or `field=value` for any config field; `run_ids`
    keeps only those runs (at most 500; the compare page's runs in one call)."""
    # count(*), not count(id): SQLite counts a whole table from its b-tree, without a scan.
    count, query = select(func.count()).select_from(Run), listed_runs_query()
    if run_ids is not None:
        ids = _id_list(run_ids)
        count, query = count.where(Run.id.in_(ids)), query.where(Run.id.in_(ids))
    total = session.scalar(filters.apply(count))
    # A list shows no results (confusion matrices, per-class accuracy): not even read.
    query = filters.apply(query)
    rows = listed_runs(session, ordered(query, sort).limit(limit).offset(offset))
    items = _with_speeds(session, rows, settings, with_result=False)
    return fast_json({"items": items, "total": total, "limit": limit, "offset": offset})


@router.get("/runs.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def runs_csv(
    session: SessionDep,
    filters: RunFilterQuery,
    columns: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="column names separated by commas, in order (default: run_id, "
            "sweep_id, name, tags, every config field, status and results, note)",
            examples=["run_id,activation,lr_ratio,final_test_acc"],
        ),
    ] = None,
    sort: SortKey | None = None,
):
    """The runs that GET /api/runs with the same filters lists (every run without any), one
    row each, in its order with `sort` (by id without); `columns` picks and orders the
    columns. An unknown column is a 422 naming it."""
    names = csv_columns(columns)
    query = filters.apply(select(Run))
    query = ordered(query, sort) if sort else query.order_by(Run.id)
    return csv_response(session.scalars(query), "runs.csv", names)


@router.get("/runs/{run_id}", response_model=RunOut, responses=NOT_FOUND)
def get_run(run: RunDep, session: SessionDep, settings: SettingsDep):
    return fast_json(_with_speeds(session, [run], settings, ask_remote=True)[0])


@router.patch("/runs/{run_id}", response_model=RunOut, responses={**NOT_FOUND, **GUARDED})
def edit_run(run: RunDep, body: RunPatch, session: SessionDep, settings: SettingsDep):
    """Sets the run's name, tags or note: only the keys sent change (null clears one). Tags
    are lower-cased and deduplicated. Never touches the training."""
    for key in body.model_fields_set:
        setattr(run, key, getattr(body, key))
    session.commit()
    session.refresh(run)
    return fast_json(_with_speeds(session, [run], settings, ask_remote=True)[0])


MetricsFormat = Annotated[
    Literal["rows", "columns"],
    Query(
        description="rows: a list of epoch objects; columns: one list per field (the "
        "i-th entries of the lists are one epoch), what the pages draw from"
    ),
]


@router.get(
    "/runs/{run_id}/metrics",
    response_model=RunMetricsOut | RunMetricsColumnsOut,
    responses=NOT_FOUND,
)
def run_metrics(run: RunDep, session: SessionDep, format: MetricsFormat = "rows"):
    """The run's epochs, in epoch order."""
    (body,) = curves_json(session, [(run.id, run.updated_at)], format)
    return Response(body, media_type="application/json")


@router.get("/runs/{run_id}/logs", response_model=RunLogsOut, responses=NOT_FOUND)
def run_logs(
    run: RunDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="only lines after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
):
    """The worker's log lines about the run, oldest first: the last `limit` of them, or those
    after line id `after` (poll with the last id seen to follow a running run)."""
    query = select(RunLog).where(RunLog.run_id == run.id, RunLog.id > after)
    rows = list(session.scalars(query.order_by(RunLog.id.desc()).limit(limit)))
    lines = [
        {"id": r.id, "at": r.at, "level": r.level, "message": r.message} for r in reversed(rows)
    ]
    return fast_json({"run_id": run.id, "lines": lines})


@router.get("/runs/{run_id}/attempts", response_model=RunAttemptsOut, responses=NOT_FOUND)
def run_attempts(run: RunDep, session: SessionDep):
    """Each attempt at the run: the worker that took it, when, and how it ended (a crash
    names the signal and where it hit)."""
    rows = [
        {
            "attempt": a.attempt, "worker": a.worker, "started_at": a.started_at,
            "ended_at": a.ended_at, "outcome": a.outcome, "detail": a.detail,
        }
        for a in lifecycle.attempts(session, run.id)
    ]  # fmt: skip
    return fast_json(
        {
            "run_id": run.id, "crashes": run.crashes, "last_crash_at": run.last_crash_at,
            "attempts": rows,
        }
    )  # fmt: skip


@router.get(
    "/runs/{run_id}/metrics.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND},
)
def run_metrics_csv(run: RunDep, session: SessionDep):
    """The run's epochs, one row each: lr, losses, accuracies, seconds, images/s."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(METRIC_FIELDS)
    for row in metric_rows(session, [run.id])[run.id]:
        writer.writerow([row[f] for f in METRIC_FIELDS])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="run-{run.id}-epochs.csv"'},
    )


@router.get("/metrics", response_model=ManyMetricsOut | ManyMetricsColumnsOut)
def many_metrics(
    session: SessionDep,
    run_ids: Annotated[RunIdList, Query(examples=["1,2,3"])],
    format: MetricsFormat = "rows",
):
    """Curves of many runs in one call (at most 500 ids); unknown ids are left out."""
    parts = curves_json(session, stamps(session, _id_list(run_ids)), format)
    return Response(b'{"runs":[' + b",".join(parts) + b"]}", media_type="application/json")


@router.post(
    "/runs/{run_id}/cancel", response_model=RunOut, responses={**NOT_FOUND, **CONFLICT, **GUARDED}
)
def cancel_run(run: RunDep, session: SessionDep):
    """Queued: cancelled at once. Running: stops between batches within seconds."""
    if not lifecycle.cancel(session, run.id):
        raise HTTPException(409, f"run {run.id} is {RunStatus(run.status).value}; not cancellable")
    session.refresh(run)
    return fast_json(run_out(run, ask_remote=True))


@router.post(
    "/runs/{run_id}/retry", response_model=RunOut, responses={**NOT_FOUND, **CONFLICT, **GUARDED}
)
def retry_run(run: RunDep, session: SessionDep):
    """Failed, cancelled or lost: queued again, resuming from its last checkpoint. Queued:
    its task is sent again (for a queue message lost with a broker that kept none); a
    duplicate is harmless, the first worker to claim the run wins."""
    if run.status != RunStatus.queued and not lifecycle.retry(session, run.id):
        raise HTTPException(409, f"run {run.id} is {RunStatus(run.status).value}; not retryable")
    ring([run.id])  # a broker that is down: stored, and sent once it is back
    session.refresh(run)
    return fast_json(run_out(run, ask_remote=True))


@router.delete(
    "/runs/{run_id}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **CONFLICT, **GUARDED},
)
def delete_run(run: RunDep, session: SessionDep, settings: SettingsDep):
    """Removes a finished run, its metrics and its checkpoint; 409 while queued or running."""
    run_id = run.id
    if not remove_run(session, open_store(settings), run_id):
        raise HTTPException(409, f"run {run_id} is {RunStatus(run.status).value}; cancel it first")
    return Response(status_code=204)


@router.get(
    "/runs/{run_id}/checkpoint",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **NOT_FOUND},
)
def download_checkpoint(run: RunDep, settings: SettingsDep):
    """The run's latest checkpoint (load with torch.load(..., weights_only=True))."""
    # The location comes from the run id alone, never from a stored path.
    found = open_store(settings).open_checkpoint(run.id)
    if found is None:
        raise HTTPException(404, f"run {run.id} has no checkpoint yet")
    name, size, chunks = found
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="run-{run.id}-{name}"',
        },
    )
