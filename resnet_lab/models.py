"""What the API returns, as typed objects; `raw` keeps the full JSON answer."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Run:
    """One training run: its config, status and results (accuracies are fractions 0..1)."""

    id: int
    status: str
    config: dict[str, Any]
    sweep_id: int | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    epochs_done: int = 0
    epochs_total: int = 0
    final_test_acc: float | None = None
    best_test_acc: float | None = None
    best_epoch: int | None = None
    duration_seconds: float | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(
            id=data["id"],
            status=data["status"],
            config=dict(data.get("config") or {}),
            sweep_id=data.get("sweep_id"),
            name=data.get("name"),
            tags=list(data.get("tags") or []),
            note=data.get("note"),
            epochs_done=data.get("epochs_done", 0),
            epochs_total=data.get("epochs_total", 0),
            final_test_acc=data.get("final_test_acc"),
            best_test_acc=data.get("best_test_acc"),
            best_epoch=data.get("best_epoch"),
            duration_seconds=data.get("duration_seconds"),
            error=data.get("error"),
            raw=data,
        )

    def row(self) -> dict[str, Any]:
        """Flat: identity, config fields as columns, then status and results."""
        return {
            "run_id": self.id,
            "sweep_id": self.sweep_id,
            "name": self.name,
            "tags": " ".join(self.tags),
            **self.config,
            "status": self.status,
            "epochs_done": self.epochs_done,
            "epochs_total": self.epochs_total,
            "final_test_acc": self.final_test_acc,
            "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch,
            "duration_seconds": self.duration_seconds,
            "note": self.note,
        }


@dataclass
class Epoch:
    """One epoch of one run (long format), with the run's config for grouping."""

    run_id: int
    epoch: int
    lr: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    seconds: float | None = None
    images_per_second: float | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, run_id: int, data: dict[str, Any], config: dict[str, Any]) -> Epoch:
        return cls(run_id=run_id, **{k: data.get(k) for k in EPOCH_FIELDS}, config=config)

    def row(self) -> dict[str, Any]:
        metrics = {k: getattr(self, k) for k in EPOCH_FIELDS}
        # The config first: a name clash (none today) leaves the measured value.
        return {"run_id": self.run_id, **self.config, **metrics}


# What the API gives per epoch, in its order (tests/client checks it against the server's).
EPOCH_FIELDS = tuple(f.name for f in fields(Epoch) if f.name not in ("run_id", "config"))


@dataclass
class Sweep:
    """A grid of runs (factors x seeds)."""

    id: int
    name: str
    run_ids: list[int]
    preset: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sweep:
        return cls(
            id=data["id"],
            name=data.get("name", ""),
            run_ids=list(data.get("run_ids") or []),
            preset=data.get("preset"),
            base=dict(data.get("base") or {}),
            grid=dict(data.get("grid") or {}),
            seeds=list(data.get("seeds") or []),
            counts=dict(data.get("counts") or {}),
            raw=data,
        )
