"""The API's request and response shapes (a run row becomes its response in app.run_view)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.text import ascii_digits, db_text
from core.db import RunStatus
from trainer.config import TrainConfig
from trainer.results import EpochMetrics


def _document_formats(schema: dict[str, Any]) -> None:
    """Publish what the validators check in code, so clients (the pages' forms included)
    can check input before sending it: lr_ratio is three positive integers, a:b:c."""
    schema["properties"]["lr_ratio"]["pattern"] = (
        r"^\s*[1-9][0-9]{0,3}\s*:\s*[1-9][0-9]{0,3}\s*:\s*[1-9][0-9]{0,3}\s*$"
    )


class TrainConfigIn(TrainConfig):
    """A trainer config as the API accepts it (POST /api/runs, every cell of a sweep).

    Strict JSON types: pydantic's lax mode would take `"5"` or `true` for an integer and
    `"0.1"` for a number, which the published schema calls invalid; here they are a 422
    naming the field (an integer is still fine for a number).
    """

    model_config = ConfigDict(strict=True, json_schema_extra=_document_formats)

    @field_validator("lr_ratio", mode="before")
    @classmethod
    def _ascii_ratio(cls, value: Any) -> Any:
        # The trainer's parser reads "٣:1:1" as 3:1:1 (regex \d, then int()).
        return ascii_digits(value)


class RunResultOut(BaseModel):
    classes: list[str] = []
    per_class_acc: list[float] = []
    confusion_matrix: list[list[int]] = []
    total_seconds: float = 0.0
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    warnings: list[str] = []


# A tag is one word a person can type in a URL and a filter box: lower-case letters, digits
# and - _ . : + /, at most 40 characters (so tags also survive the CSV and `?tag=`).
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:+/-]{0,39}$")
MAX_TAGS = 20


class RunPatch(BaseModel):
    """What a person may change on a run: its name, tags and note (null clears)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: db_text(200) | None = None
    tags: Annotated[list[str], Field(max_length=MAX_TAGS)] | None = None
    note: db_text(10_000) | None = None

    @field_validator("name", "note")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        return value or None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            return None
        out: list[str] = []
        for raw in tags:
            tag = raw.strip().lower()
            if not TAG_PATTERN.match(tag):
                raise ValueError(
                    f"tag {raw[:50]!r}: use 1 to 40 letters, digits or - _ . : + /, "
                    "starting with a letter or digit"
                )
            if tag not in out:
                out.append(tag)
        return out


class RunOut(BaseModel):
    id: int
    sweep_id: int | None
    name: str | None
    tags: list[str]
    note: str | None
    status: RunStatus
    config: dict[str, Any]
    attempts: int
    cancel_requested: bool
    worker: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    epochs_done: int
    epochs_total: int
    batches_done: int = Field(0, description="Batches finished in the current attempt.")
    progress_at: datetime | None = Field(
        None, description="When the current attempt last finished a batch (or began training)."
    )
    stalled_seconds: float | None = Field(
        None,
        description="Seconds without a finished batch, once past a quarter of the stall "
        "limit (STALL_TIMEOUT, or 20 median batch times if longer); null otherwise.",
    )
    progress: float = Field(description="Finished epochs over all epochs, 0..1.")
    duration_seconds: float | None
    eta_seconds: float | None = Field(
        description="Seconds left: from the mean epoch so far, or before the first epoch ends "
        "from the speed the workers measured for the same model width."
    )
    images_per_second: float | None = Field(
        None, description="Mean training images per second over the run's epochs."
    )
    final_test_acc: float | None
    best_test_acc: float | None
    best_epoch: int | None
    result: RunResultOut | None
    environment: dict[str, Any] | None
    error: str | None
    has_checkpoint: bool = Field(
        description="GET /api/runs/{id}/checkpoint serves a file now. With a URL RUNS_DIR, "
        "lists and event streams give the database's hint instead (an epoch is done and a "
        "location set), since asking the store costs a request per run."
    )


class RunPage(BaseModel):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


class EpochOut(EpochMetrics):
    # A diverged run's loss is NaN in the trainer and null here (JSON has no NaN).
    train_loss: float | None
    train_acc: float | None
    test_loss: float | None
    test_acc: float | None


class RunMetricsOut(BaseModel):
    run_id: int
    epochs: list[EpochOut]


class ManyMetricsOut(BaseModel):
    runs: list[RunMetricsOut]


class RunMetricsColumnsOut(BaseModel):
    """A run's epochs in columns (`?format=columns`): one list per field, the i-th entry
    of each belonging to the same epoch, in epoch order."""

    run_id: int
    epoch: list[int]
    lr: list[float]
    train_loss: list[float | None]
    train_acc: list[float | None]
    test_loss: list[float | None]
    test_acc: list[float | None]
    seconds: list[float]
    images_per_second: list[float]


class ManyMetricsColumnsOut(BaseModel):
    runs: list[RunMetricsColumnsOut]


class LogLineOut(BaseModel):
    id: int
    at: datetime
    level: str
    message: str


class RunLogsOut(BaseModel):
    run_id: int
    lines: list[LogLineOut]


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None = Field(
        description="succeeded, failed, cancelled, crashed, lost, requeued; null while under way"
    )
    detail: str | None


class RunAttemptsOut(BaseModel):
    run_id: int
    crashes: int = Field(description="worker processes the run killed since its last retry")
    last_crash_at: str | None = Field(
        description='where the last one died, e.g. "epoch 1, batch 23 of 23"'
    )
    attempts: list[AttemptOut]


class StatusesOut(BaseModel):
    all: list[str]
    active: list[str]
    final: list[str]
    changing: list[str]
    retryable: list[str]


class ErrorOut(BaseModel):
    detail: str


class CellOut(BaseModel):
    key: dict[str, Any]
    run_ids: list[int]
    statuses: dict[str, int]
    n: int
    mean: float | None
    std: float | None
    ci95: list[float] | None
    is_baseline: bool
    diff_from_baseline: float | None
    p_value: float | None = Field(description="Welch's t-test against the baseline cell.")
    p_holm: float | None = Field(description="p_value, Holm-adjusted over the table's cells.")
    paper_test_acc: float | None
    diff_from_paper: float | None
    paper_p_value: float | None = Field(description="One-sample t-test against the report.")
    paper_p_holm: float | None = Field(
        description="paper_p_value, Holm-adjusted over the cells the report has a figure for."
    )


class CellsOut(BaseModel):
    by: list[str]
    cells: list[CellOut]


class MarginalOut(BaseModel):
    value: Any
    n: int = Field(description="Succeeded runs in the cells with this value.")
    cells: int = Field(description="Cells with a mean, each weighing the same.")
    mean: float | None = Field(description="Mean of those cells' means.")
    std: float | None = Field(description="Standard deviation of those cells' means.")


class BestCellOut(BaseModel):
    key: dict[str, Any]
    mean: float
    n: int


class SweepOut(BaseModel):
    id: int
    name: str
    preset: str | None
    created_at: datetime
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    factors: list[str]
    seeds: list[int]
    run_ids: list[int]
    counts: dict[str, int]
    total_runs: int
    progress: float
    eta_seconds: float | None
    best: BestCellOut | None = Field(None, description="Highest mean final test accuracy so far.")


class SweepDetailOut(SweepOut):
    baseline: dict[str, Any] | None
    cells: list[CellOut]
    marginals: dict[str, list[MarginalOut]]


class SweepPage(BaseModel):
    items: list[SweepOut]
    total: int
    limit: int
    offset: int


class EstimateOut(BaseModel):
    runs: int
    max_runs: int
    epochs: int
    images: int
    estimated_gpu_seconds: float | None
    images_per_second: float | None
    basis: list[str]


class CancelledOut(BaseModel):
    cancelled: list[int]


class RetriedOut(BaseModel):
    retried: list[int]


class HealthOut(BaseModel):
    ok: bool
    database: bool
    broker: bool
    workers: list[str]
    # Connections this web process holds from its database pool, not counting this request.
    db_connections_in_use: int


class WorkerRunOut(BaseModel):
    """The run a worker is training now."""

    id: int
    name: str | None
    summary: str  # dataset · width · activation · LR ratio · augmentation · seed
    epochs_done: int
    epochs_total: int
    heartbeat_at: datetime | None


class WorkerOut(BaseModel):
    name: str
    host: str | None
    pid: int | None
    started_at: datetime | None
    last_seen: datetime
    heartbeat_age_seconds: float  # since the worker last reported in
    device_kind: str | None  # "cuda" or "cpu"; null for a worker too old to report it
    device_name: str | None
    memory_used_bytes: int | None  # GPU memory; null on a CPU
    memory_total_bytes: int | None
    utilization: float | None  # percent: the GPU's, or on a CPU this process's CPU time
    temperature_c: float | None
    cpu_threads: int | None
    pack: int | None = Field(None, description="Runs this worker trains together (--pack).")
    slots: int = Field(1, description="Live workers on the same host and device (--slots).")
    run: WorkerRunOut | None


class QueueOut(BaseModel):
    depth: int  # runs queued, counted in the database
    running: int
    estimated_drain_seconds: float | None  # null when there is no honest estimate
    basis: str  # what the estimate rests on, or why there is none


class WorkersOut(BaseModel):
    workers: list[WorkerOut]
    queue: QueueOut


# Error answers shared by the routes, so the OpenAPI schema documents them.
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such id"}}
CONFLICT = {409: {"model": ErrorOut, "description": "the run's state forbids it"}}
RATE_LIMITED = {
    429: {
        "model": ErrorOut,
        "description": "over SUBMIT_RATE_PER_MINUTE runs from this client; see Retry-After",
    }
}
# What a state-changing request may get before its route runs: app.security's middleware
# (token, CSRF, size, Content-Length) and FastAPI itself, which answers 400 to a body it cannot
# decode at all (not UTF-8; JSON that does not parse is a 422 like other invalid input).
GUARDED = {
    400: {"model": ErrorOut, "description": "unreadable body or Content-Length"},
    401: {"model": ErrorOut, "description": "API_TOKEN is set and no valid token was sent"},
    403: {"model": ErrorOut, "description": "cross-site request, or missing X-CSRF-Token"},
    413: {"model": ErrorOut, "description": "body over MAX_BODY_BYTES"},
}


class AnovaRowOut(BaseModel):
    term: str = Field(description="A factor, or two joined by ':' for their interaction.")
    factors: list[str]
    sum_sq: float = Field(description="Type II sum of squares.")
    df: int
    F: float | None
    p: float | None
    partial_eta_sq: float | None = Field(description="sum_sq / (sum_sq + residual sum_sq).")
    eta_sq: float | None = Field(
        description="sum_sq / the total sum of squares: the share of the variance the term "
        "explains (type II sums of unequal cells need not add up to 1)."
    )


class ResidualOut(BaseModel):
    sum_sq: float
    df: int
    mean_sq: float
    sd: float = Field(description="sqrt(mean_sq): the run-to-run spread the model leaves.")


class AnovaOut(BaseModel):
    metric: str
    model: str | None = Field(
        description="'one-way', 'two-way interactions', or 'additive (...)' when one run per "
        "cell (or an empty cell) leaves the interactions in the error; null with rows []."
    )
    n: int = Field(description="Finished runs analysed.")
    rows: list[AnovaRowOut]
    residual: ResidualOut | None
    note: str


class EffectLevelOut(BaseModel):
    level: Any
    mean: float | None = Field(description="Mean of the cell means at this level.")
    diff: float | None = Field(description="mean minus the reference level's, metric units.")
    ci95: list[float] | None
    text: str | None = Field(description="e.g. 'sigmoid − relu: −5.20 points [−5.60, −4.80]'.")


class FactorEffectOut(BaseModel):
    factor: str
    reference: Any
    ref_mean: float | None
    levels: list[EffectLevelOut]


class InteractionPointOut(BaseModel):
    level: Any
    n: int
    mean: float | None
    std: float | None
    ci95: list[float] | None


class InteractionSeriesOut(BaseModel):
    level: Any
    points: list[InteractionPointOut]


class InteractionOut(BaseModel):
    factor: str = Field(description="One line per level of this factor...")
    across: str = Field(description="...across the levels of this one (the x axis).")
    series: list[InteractionSeriesOut]


class EffectsOut(BaseModel):
    metric: str
    model: str | None
    method: str = Field(description="How the intervals are computed.")
    residual: ResidualOut | None
    effects: list[FactorEffectOut]
    interactions: list[InteractionOut]
    note: str


class FactorPowerOut(BaseModel):
    factor: str
    cells_per_level: int
    effect_size: float = Field(description="Cohen's d: difference / residual sd.")
    runs_per_level: float = Field(description="TTestIndPower's n per group.")
    seeds_per_cell: int = Field(description="ceil(runs_per_level / cells_per_level).")
    extra_seeds: int
    extra_runs: int
    extra_train_seconds: float | None = Field(description="From the mean finished run's time.")


class PowerOut(BaseModel):
    metric: str
    difference: float = Field(description="In metric units (accuracy: points / 100).")
    alpha: float
    power: float
    seeds: int = Field(description="Seeds the grid has now.")
    cells: int
    mean_run_seconds: float | None
    residual_sd: float | None
    factors: list[FactorPowerOut]
    note: str
