"""Runs as CSV: the columns an export may hold and the file itself (the runs list's export
and a grid's)."""

from __future__ import annotations

import csv
import io

from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from core.db import Run, RunStatus
from trainer.config import TrainConfig

CSV_RESULT_COLUMNS = (
    "status",
    "epochs_done",
    "final_test_acc",
    "best_test_acc",
    "best_epoch",
    "train_seconds",
)
CONFIG_FIELDS = tuple(TrainConfig.model_fields)
# What a CSV holds when no columns are asked for: every config field and result.
CSV_DEFAULT = ("run_id", "sweep_id", "name", "tags", *CONFIG_FIELDS, *CSV_RESULT_COLUMNS, "note")
# Besides those, what the runs table can show.
CSV_MORE = ("epochs_total", "images_per_second", "seconds_per_epoch", "attempts", "worker",
            "queued_at", "started_at", "finished_at")  # fmt: skip
CSV_COLUMNS = (*CSV_DEFAULT, *CSV_MORE)


def csv_columns(text: str | None) -> list[str]:
    """The `columns` parameter: names separated by commas, each one of CSV_COLUMNS."""
    if text is None:
        return list(CSV_DEFAULT)
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in CSV_COLUMNS]
    if unknown or not names:
        msg = (
            f"unknown column {unknown[0][:50]!r}; one of {', '.join(CSV_COLUMNS)}"
            if unknown
            else "at least one column name"
        )
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "columns"), "msg": msg, "input": text}]
        )
    return names


def _csv_cell(run: Run, column: str):
    if column == "run_id":
        return run.id
    if column in CONFIG_FIELDS:
        return run.config.get(column)
    if column == "status":
        return RunStatus(run.status).value
    if column == "tags":
        return " ".join(run.tags or [])  # no tag holds a space
    if column == "seconds_per_epoch":
        return run.train_seconds / run.epochs_done if run.epochs_done else None
    value = getattr(run, column)
    return value.isoformat() if hasattr(value, "isoformat") else value


def csv_response(runs, filename: str, columns: list[str] | None = None) -> Response:
    columns = columns or list(CSV_DEFAULT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for run in runs:
        writer.writerow([_csv_cell(run, c) for c in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
