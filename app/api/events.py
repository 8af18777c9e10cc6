"""Server-sent events: new epochs and status changes, within a second of the worker's commit.

The worker writes to the database from another process, so each stream polls a few cheap
indexed queries every EVENTS_POLL_SECONDS and sends only what is new.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse

from app.api.deps import RunDep, SettingsDep, SweepDep, dumps
from app.api.runs import metric_rows
from app.db import FINAL, Run, RunStatus, new_session
from app.schemas import NOT_FOUND, run_out

router = APIRouter(prefix="/api", tags=["events"])


def _event(name: str, data) -> dict:
    return {"event": name, "data": dumps(data).decode()}


def _new_epochs(session, run_ids: list[int], after: dict[int, int]) -> list[dict]:
    return [
        {"run_id": run_id, **row}
        for run_id, rows in metric_rows(session, run_ids, after).items()
        for row in rows
    ]


@router.get("/runs/{run_id}/events", responses=NOT_FOUND)
async def run_events(
    run: RunDep,
    request: Request,
    settings: SettingsDep,
    after_epoch: Annotated[int, Query(ge=0, le=10**6)] = 0,
):
    """`epoch` per new epoch (every stored one after `after_epoch` first), `status` per
    change of the run, then `end` once it is finished."""
    run_id = run.id

    def poll(last_epoch: int, last_update: datetime | None):
        with new_session() as session:
            current = session.get(Run, run_id)
            if current is None:
                return [], last_epoch, last_update, True
            epochs = _new_epochs(session, [run_id], {run_id: last_epoch})
            events = [
                _event("epoch", {k: v for k, v in e.items() if k != "run_id"}) for e in epochs
            ]
            if epochs:
                last_epoch = epochs[-1]["epoch"]
            if current.updated_at != last_update:
                events.append(_event("status", run_out(current)))
                last_update = current.updated_at
            finished = RunStatus(current.status) in FINAL and not current.cancel_requested
            return events, last_epoch, last_update, finished

    async def stream() -> AsyncIterator[dict]:
        last_epoch, last_update = after_epoch, None
        while not await request.is_disconnected():
            events, last_epoch, last_update, finished = await anyio.to_thread.run_sync(
                poll, last_epoch, last_update
            )
            for event in events:
                yield event
            if finished:
                yield _event("end", {"run_id": run_id})
                return
            await anyio.sleep(settings.events_poll_seconds)

    return EventSourceResponse(stream(), ping=15)


@router.get("/sweeps/{sweep_id}/events", responses=NOT_FOUND)
async def sweep_events(sweep: SweepDep, request: Request, settings: SettingsDep):
    """`run` when one of the sweep's runs changes (status or progress), `epoch` (with
    `run_id`) per new epoch of any of its runs."""
    sweep_id = sweep.id

    def poll(seen: dict[int, datetime], last_epochs: dict[int, int]):
        with new_session() as session:
            runs = list(session.scalars(select(Run).where(Run.sweep_id == sweep_id)))
            events = []
            # Epochs first: a run's last epoch arrives before its "succeeded".
            active = [r.id for r in runs if r.epochs_done > last_epochs.get(r.id, 0)]
            if active:
                for epoch in _new_epochs(session, active, last_epochs):
                    last_epochs[epoch["run_id"]] = epoch["epoch"]
                    events.append(_event("epoch", epoch))
            for run in runs:
                if seen.get(run.id) != run.updated_at:
                    seen[run.id] = run.updated_at
                    events.append(_event("run", run_out(run, with_result=False)))
            return events

    async def stream() -> AsyncIterator[dict]:
        seen: dict[int, datetime] = {}
        with new_session() as session:
            # Epochs stored before the client connected come from /api/metrics, not here.
            last_epochs = dict(
                session.execute(
                    select(Run.id, Run.epochs_done).where(Run.sweep_id == sweep_id)
                ).all()
            )
        while not await request.is_disconnected():
            for event in await anyio.to_thread.run_sync(poll, seen, last_epochs):
                yield event
            await anyio.sleep(settings.events_poll_seconds)

    return EventSourceResponse(stream(), ping=15)
