"""A grid of runs: the sweep row and its runs, stored in one transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db import Run, Sweep
from core.lifecycle import new_run
from trainer.config import TrainConfig


def create_sweep(
    session: Session,
    *,
    name: str,
    preset: str | None,
    base: dict,
    grid: dict,
    seeds: list[int],
    configs: list[TrainConfig],
) -> tuple[Sweep, list[Run]]:
    sweep = Sweep(name=name, preset=preset, base=base, grid=grid, seeds=seeds)
    session.add(sweep)
    session.flush()
    runs = [new_run(config, sweep.id) for config in configs]
    session.add_all(runs)
    session.commit()
    return sweep, runs
