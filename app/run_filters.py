"""Which runs a request means: the filters and sort keys of GET /api/runs, shared by its
CSV export, the bulk actions and the group statistics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String, cast, func, or_

from app.text import ASCII_ONLY, ascii_digits, ascii_id, db_text, has_other_digits
from core.db import Run, RunStatus
from trainer.config import TrainConfig

SORTABLE = {
    "id": Run.id,
    "status": Run.status,
    "sweep_id": Run.sweep_id,
    "dataset": Run.dataset,
    "activation": Run.activation,
    "lr_ratio": Run.lr_ratio,
    "augmentation": Run.augmentation,
    "seed": Run.seed,
    "attempts": Run.attempts,
    "queued_at": Run.queued_at,
    "started_at": Run.started_at,
    "finished_at": Run.finished_at,
    "epochs_done": Run.epochs_done,
    "epochs_total": Run.epochs_total,
    "progress": Run.epochs_done * 1.0 / Run.epochs_total,
    "final_test_acc": Run.final_test_acc,
    "best_test_acc": Run.best_test_acc,
    "best_epoch": Run.best_epoch,
    # Training time: the sum of the run's epoch times.
    "duration_seconds": Run.train_seconds,
}
SortKey = Literal[tuple(SORTABLE) + tuple(f"-{k}" for k in SORTABLE)]  # type: ignore[valid-type]
# The statuses' names as a type, from core.db's one vocabulary (not a copy of it).
StatusName = Literal[tuple(s.value for s in RunStatus)]


def _filtered(
    query,
    status: list[StatusName] | None,
    sweep_id: int | None,
    dataset: str | None,
    activation: str | None,
    lr_ratio: str | None,
    augmentation: str | None,
    seed: int | None,
    tag: str | None = None,
    q: str | None = None,
    worker: str | None = None,
):
    if status:
        query = query.where(Run.status.in_(status))
    if worker:
        query = query.where(Run.worker == worker)
    if tag:
        # Tags are stored as a JSON list of strings whose characters need no JSON escaping,
        # so the quoted tag appears verbatim in the column's text on SQLite and PostgreSQL.
        query = query.where(cast(Run.tags, String).contains(f'"{tag.lower()}"', autoescape=True))
    for term in (q or "").split():
        query = query.where(_matches(term))
    for column, value in (
        (Run.sweep_id, sweep_id),
        (Run.dataset, dataset),
        (Run.activation, activation),
        (Run.lr_ratio, lr_ratio),
        (Run.augmentation, augmentation),
        (Run.seed, seed),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


def _matches(term: str):
    """One search word: `field=value` compares a config field (`width=8`, `lr=0.05`); a run
    id (`12`, `#12`); else text in the name, note, tags or the study's factors (any case)."""
    field, eq, value = term.partition("=")
    if eq and field in TrainConfig.model_fields:
        extracted = cast(Run.config[field].as_string(), String)
        return func.lower(extracted) == value.lower()
    needle = term.lower()
    texts = [Run.name, Run.note, cast(Run.tags, String), Run.dataset, Run.activation,
             Run.lr_ratio, Run.augmentation]  # fmt: skip
    found = or_(*(func.lower(t).contains(needle, autoescape=True) for t in texts))
    run_id = ascii_id(term.removeprefix("#"))
    if run_id is not None:
        return or_(Run.id == run_id, found)
    return found


def _search_words(q: str) -> str:
    """Refuses a search word meant as a number but written in other digits ("²", "#٣",
    "width=٣"): _matches would not find it, and int() may refuse it."""
    for term in q.split() if isinstance(q, str) else ():
        field, eq, value = term.partition("=")
        number = term.removeprefix("#")
        if (number.isdigit() and not number.isascii()) or (
            eq and field in TrainConfig.model_fields and has_other_digits(value)
        ):
            raise ValueError(f"{term[:50]!r}: {ASCII_ONLY}")
    return q


class RunFilter(BaseModel):
    """The filters of GET /api/runs, as query parameters; the CSV export and the group
    statistics take the same ones, and bulk actions the same as a JSON object."""

    status: list[StatusName] | None = Field(None, description="may repeat")
    sweep_id: Annotated[int, Field(ge=1, le=2**62)] | None = None
    dataset: db_text(64) | None = None
    activation: db_text(64) | None = None
    lr_ratio: db_text(64, ascii_digits) | None = None
    augmentation: db_text(64) | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    tag: db_text(40) | None = Field(None, examples=["baseline"])
    q: db_text(200, _search_words) | None = Field(None, examples=["tanh width=16"])
    worker: db_text(200) | None = None

    def apply(self, query):
        """`query` narrowed to the runs these filters keep."""
        return _filtered(
            query, self.status, self.sweep_id, self.dataset, self.activation, self.lr_ratio,
            self.augmentation, self.seed, self.tag, self.q, self.worker,
        )  # fmt: skip


class RunFilterIn(RunFilter):
    """The filters as a JSON object: strict types, and an unknown key is a 422 (a misspelt
    filter must never widen a bulk action to every run)."""

    model_config = ConfigDict(extra="forbid", strict=True)


RunFilterQuery = Annotated[RunFilter, Query()]


def ordered(query, sort: str):
    """`query` sorted by a SortKey; runs without a value (no result yet) go last either way,
    on SQLite and PostgreSQL alike, and ties go by id."""
    column = SORTABLE[sort.lstrip("-")]
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    tiebreak = Run.id.desc() if sort.startswith("-") else Run.id.asc()
    return query.order_by(order, tiebreak)
