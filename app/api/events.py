"""Server-sent events: new epochs and status changes, within a second of the worker's commit.

The worker writes to the database from another process. The streams do not read it
themselves: they subscribe to the process's one poller (app.hub), so an open stream holds no
database connection and costs no query of its own. A missing id is a plain 404, checked with
a short session that is closed before the stream starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse

from app.api.deps import RunId, SweepId
from app.schemas import NOT_FOUND
from core.db import Run, Sweep, new_session

if TYPE_CHECKING:  # app.hub imports the API's helpers
    from app.hub import EventHub

router = APIRouter(prefix="/api", tags=["events"])


def _hub(request: Request) -> EventHub:
    return request.app.state.event_hub


# Plain `def` routes: FastAPI runs the existence check in its thread pool, off the event loop.
@router.get("/runs/{run_id}/events", responses=NOT_FOUND)
def run_events(
    run_id: RunId,
    request: Request,
    after_epoch: Annotated[int, Query(ge=0, le=10**6)] = 0,
):
    """`epoch` per new epoch (every stored one after `after_epoch` first), `status` per
    change of the run, then `end` once it is final (succeeded, failed or cancelled)."""
    with new_session() as session:
        if session.scalar(select(Run.id).where(Run.id == run_id)) is None:
            raise HTTPException(404, f"run {run_id} not found")
    return EventSourceResponse(_hub(request).follow_run(run_id, after_epoch), ping=15)


@router.get("/sweeps/{sweep_id}/events", responses=NOT_FOUND)
def sweep_events(sweep_id: SweepId, request: Request):
    """`run` when one of the sweep's runs changes (status or progress), `epoch` (with
    `run_id`) per new epoch of any of its runs, then `end` once every run is final."""
    with new_session() as session:
        if session.get(Sweep, sweep_id) is None:
            raise HTTPException(404, f"sweep {sweep_id} not found")
        # Epochs stored before the client connected come from /api/metrics, not here.
        stored = dict(
            session.execute(select(Run.id, Run.epochs_done).where(Run.sweep_id == sweep_id)).all()
        )
    return EventSourceResponse(_hub(request).follow_sweep(sweep_id, stored), ping=15)
