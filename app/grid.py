"""Sweeps as data: the request body, grid expansion, the report's preset and its table."""

from __future__ import annotations

import csv
import itertools
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from app.schemas import TrainConfigIn
from trainer.config import REPORT_GRID, TrainConfig

PRESETS: dict[str, dict[str, list[Any]]] = {"report": REPORT_GRID}
# The report's own baseline: the original ResNet recipe.
REPORT_BASELINE = {"lr_ratio": "2:1:1", "activation": "relu", "augmentation": "crop_flip"}
CONFIG_FIELDS = tuple(TrainConfig.model_fields)


class SweepRequest(BaseModel):
    """POST /api/sweeps. Either a preset or a grid; base fields apply to every run."""

    # Strict JSON types, like a single run's config (app.schemas.TrainConfigIn).
    model_config = {"extra": "forbid", "strict": True}

    name: str | None = Field(None, max_length=200)
    preset: Literal["report"] | None = Field(None, description="'report': the report's 36 cells.")
    base: dict[str, Any] = Field(default_factory=dict, description="Config fields for all runs.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Config field -> values; all combinations are run."
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=100)

    @field_validator("grid")
    @classmethod
    def _known_fields(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for field, values in grid.items():
            if field not in CONFIG_FIELDS:
                raise ValueError(f"unknown config field {field!r}")
            if field == "seed":
                raise ValueError("vary the seed with 'seeds', not in the grid")
            if not values:
                raise ValueError(f"grid field {field!r} has no values")
            if len(values) > 100:
                raise ValueError(f"grid field {field!r} has more than 100 values")
        return grid

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        if any(s < 0 or s > 2**31 - 1 for s in seeds):
            raise ValueError("seeds must be in 0..2147483647")
        return seeds

    @model_validator(mode="after")
    def _preset_or_grid(self) -> SweepRequest:
        if self.preset and self.grid:
            raise ValueError("give either a preset or a grid, not both")
        if not self.preset and not self.grid:
            raise ValueError("give a grid (field -> values) or a preset")
        return self

    def resolved_grid(self) -> dict[str, list[Any]]:
        return PRESETS[self.preset] if self.preset else self.grid

    def run_count(self) -> int:
        count = len(self.seeds)
        for values in self.resolved_grid().values():
            count *= len(values)
        return count


class GridError(ValueError):
    """A grid cell's config is invalid; `errors` are pydantic-shaped, located in the body."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("invalid grid")
        self.errors = errors


def expand(request: SweepRequest) -> list[TrainConfig]:
    """The Cartesian product of the grid, times the seeds, each a validated config."""
    grid = request.resolved_grid()
    fields = list(grid)
    configs = []
    for values in itertools.product(*(grid[f] for f in fields)):
        for seed in request.seeds:
            data = {**request.base, **dict(zip(fields, values)), "seed": seed}
            try:
                configs.append(TrainConfigIn.model_validate(data))
            except ValidationError as exc:
                raise GridError(_locate(exc, fields)) from None
    return configs


def normalised_grid(request: SweepRequest, configs: list[TrainConfig]) -> dict[str, list[Any]]:
    """The grid as its runs' configs hold it: each value after TrainConfig's validation
    ("02:1:1" -> "2:1:1", 1 -> 1.0 for lr), so the stored grid, the cells and the baselines
    compare the same values. `configs` are expand(request)'s, in its order. Two values that
    validate to one (["2:1:1", "02:1:1"]) would make two cells of the same runs: a GridError."""
    grid = request.resolved_grid()
    fields = list(grid)
    out: dict[str, list[Any]] = {f: [None] * len(grid[f]) for f in fields}
    # expand() yields len(seeds) configs per cell, cells in itertools.product order.
    cells = itertools.product(*(range(len(grid[f])) for f in fields))
    for indices, config in zip(cells, configs[:: len(request.seeds)]):
        for field, i in zip(fields, indices):
            out[field][i] = getattr(config, field)
    errors = [
        {
            "loc": ["body", "grid", field],
            "msg": f"grid field {field!r} lists the same value twice: {values}",
            "type": "value_error",
        }
        for field, values in out.items()
        if len(set(values)) < len(values)
    ]
    if errors:
        raise GridError(errors)
    return out


def field_value(field: str, value: Any, base: dict[str, Any]) -> Any:
    """`value` of config field `field` as TrainConfig validates it, read leniently (query
    text: "0.00005" and "5e-05" are the same lr); None where it is not a valid value."""
    try:
        return getattr(TrainConfig.model_validate({**base, field: value}), field)
    except ValidationError:
        return None


def _locate(exc: ValidationError, grid_fields: list[str]) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors(include_url=False, include_context=False):
        field = err["loc"][0] if err["loc"] else None
        where = "grid" if field in grid_fields else "base"
        loc = ["body", where, field] if field is not None else ["body", where]
        errors.append({"loc": loc, "msg": err["msg"], "type": err["type"]})
    return errors


@lru_cache
def paper_table() -> dict[tuple[str, str, str], float]:
    """(augmentation, activation, lr_ratio) -> the report's test accuracy, as a fraction."""
    text = resources.files("app").joinpath("data/paper_table.csv").read_text()
    return {
        (row["augmentation"], row["activation"], row["lr_ratio"]): float(row["test_accuracy"]) / 100
        for row in csv.DictReader(text.splitlines())
    }


def paper_figure(config: dict[str, Any]) -> float | None:
    if config.get("dataset") != "cifar10":
        return None
    key = (config.get("augmentation"), config.get("activation"), config.get("lr_ratio"))
    return paper_table().get(key)  # type: ignore[arg-type]
