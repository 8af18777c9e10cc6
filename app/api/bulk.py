"""POST /api/runs/bulk: tag, untag, cancel, retry or delete many runs in one request.

The runs are named by id or by the filters of GET /api/runs. Each run goes through the same
state change as its single-run endpoint (core.lifecycle's compare-and-set, the checkpoint
removed with a deleted run); a run the action does not apply to is skipped with the reason,
and the others go ahead.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select

from app.api.deps import SessionDep, SettingsDep, fast_json
from app.run_actions import remove_run
from app.run_filters import RunFilterIn
from app.schemas import GUARDED, MAX_TAGS, RunPatch
from core import lifecycle
from core.db import ACTIVE, RETRYABLE, Run, RunStatus
from core.queue import ring
from core.store import open_store

router = APIRouter(prefix="/api", tags=["runs"])

# Runs one request may act on: each is a database write (and a checkpoint removal for a
# delete), so a larger selection goes in several requests.
MAX_BULK = 1000
Action = Literal["tag", "untag", "cancel", "retry", "delete"]
RunId = Annotated[int, Field(ge=1, le=2**62)]


class BulkIn(BaseModel):
    """`ids` or `filter` (not both); `tags` for tag and untag."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Action
    ids: Annotated[list[RunId], Field(min_length=1, max_length=MAX_BULK)] | None = Field(
        None, examples=[[1, 2, 3]]
    )
    filter: RunFilterIn | None = Field(
        None,
        description="the query parameters of GET /api/runs as an object, e.g. "
        '{"status": ["failed"], "activation": "tanh"}; {} is every run',
    )
    tags: Annotated[list[str], Field(min_length=1, max_length=MAX_TAGS)] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        # A run's own tag rules (PATCH /api/runs/{id}): lower-cased, deduplicated, one word.
        try:
            return RunPatch.model_validate({"tags": tags}).tags
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


class BulkResultOut(BaseModel):
    id: int
    outcome: Literal["done", "skipped"]
    status: RunStatus | None = Field(description="the run's status after the action")
    reason: str | None = Field(description="why a run was skipped")
    tags: list[str] | None = Field(None, description="the run's tags after tag or untag")


class BulkOut(BaseModel):
    action: Action
    requested: int = Field(description="runs named by ids, or matched by the filter")
    done: int
    skipped: int
    results: list[BulkResultOut]


def _refuse(field: str, msg: str, given: object = None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": msg, "input": given}]
    )


def _target_ids(session, body: BulkIn) -> list[int]:
    if (body.ids is None) == (body.filter is None):
        raise _refuse("ids", "give either ids or filter")
    if body.action in ("tag", "untag") and not body.tags:
        raise _refuse("tags", f'the tags to {body.action}, e.g. ["baseline"]')
    if body.action not in ("tag", "untag") and body.tags is not None:
        raise _refuse("tags", f"only tag and untag take tags, not {body.action}")
    if body.ids is not None:
        return list(dict.fromkeys(body.ids))
    matched = session.scalar(body.filter.apply(select(func.count(Run.id))))
    if matched > MAX_BULK:
        raise _refuse(
            "filter",
            f"matches {matched} runs; at most {MAX_BULK} in one request (narrow the filter)",
            body.filter.model_dump(exclude_none=True),
        )
    return list(session.scalars(body.filter.apply(select(Run.id)).order_by(Run.id)))


def _status(run: Run) -> str:
    return RunStatus(run.status).value


def _cancel(session, run: Run, _body: BulkIn, _store) -> str | None:
    if lifecycle.cancel(session, run.id):
        return None
    session.refresh(run)
    return f"already finished ({_status(run)})"


def _retry(session, run: Run, _body: BulkIn, _store) -> str | None:
    if run.status == RunStatus.queued:
        return "already queued"
    if lifecycle.retry(session, run.id):
        return None
    session.refresh(run)
    if run.status in ACTIVE:
        return f"{_status(run)}; not retryable until it ends"
    retryable = ", ".join(s.value for s in RETRYABLE)
    return f"{_status(run)}; only {retryable} runs are retried"


def _delete(session, run: Run, _body: BulkIn, store) -> str | None:
    if remove_run(session, store, run.id):
        return None
    session.refresh(run)
    return f"{_status(run)}; cancel it first"


def _tag(session, run: Run, body: BulkIn, _store) -> str | None:
    current = list(run.tags or [])
    added = [t for t in body.tags if t not in current]
    if not added:
        return "already tagged"
    if len(current) + len(added) > MAX_TAGS:
        return f"would have more than {MAX_TAGS} tags"
    run.tags = current + added
    return None


def _untag(session, run: Run, body: BulkIn, _store) -> str | None:
    current = list(run.tags or [])
    kept = [t for t in current if t not in body.tags]
    if len(kept) == len(current):
        return "not tagged"
    run.tags = kept or None
    return None


# Each one returns None when done, else why the run was skipped. Tag and untag change only
# the loaded rows (committed together); the others commit their own compare-and-set.
ACTIONS = {"tag": _tag, "untag": _untag, "cancel": _cancel, "retry": _retry, "delete": _delete}


@router.post("/runs/bulk", response_model=BulkOut, responses=GUARDED)
def bulk_action(body: BulkIn, session: SessionDep, settings: SettingsDep):
    """One action on many runs (at most 1000): each run is done or skipped with the reason
    (cancel: "already finished (succeeded)"; delete: "running; cancel it first"; an unknown
    id: "not found"). Tags are added to (tag) or removed from (untag) the runs' own. Retried
    runs are sent to the workers together."""
    ids = _target_ids(session, body)
    runs = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}
    store = open_store(settings) if body.action == "delete" else None
    act = ACTIONS[body.action]
    results = []
    for run_id in ids:
        run = runs.get(run_id)
        if run is None:
            results.append({"id": run_id, "outcome": "skipped", "status": None,
                            "reason": "not found"})  # fmt: skip
            continue
        reason = act(session, run, body, store)
        if body.action == "delete" and reason is None:
            status = None  # gone
        else:
            if body.action in ("cancel", "retry"):
                session.refresh(run)
            status = _status(run)
        result = {"id": run_id, "outcome": "skipped" if reason else "done", "status": status,
                  "reason": reason}  # fmt: skip
        if body.action in ("tag", "untag"):
            result["tags"] = list(run.tags or [])
        results.append(result)
    session.commit()
    if body.action == "retry":
        retried = [r["id"] for r in results if r["outcome"] == "done"]
        if retried:
            ring(retried)  # a broker that is down: stored, and sent once it is back
    done = sum(r["outcome"] == "done" for r in results)
    return fast_json(
        {
            "action": body.action,
            "requested": len(ids),
            "done": done,
            "skipped": len(results) - done,
            "results": results,
        }
    )
