"""How fast the workers train, from what they measured: the basis of every time estimate.

An estimate that assumes a GPU figure is wrong by an order of magnitude on a CPU-only host,
so nothing here assumes a speed. A run's speed is its training images per second of whole
epoch (training plus the test pass, as `Run.train_seconds` sums them), measured over the
latest runs of the same model width on the same device. Images are 32×32 in every dataset,
so the speed of a width carries over between datasets.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import ACTIVE, Run

# (training images, test images) of each dataset.
DATASET_SIZES = {
    "cifar10": (50_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "digits": (1437, 360),
}
RECENT_RUNS = 20


def images_per_epoch(config: Any) -> tuple[int, int]:
    """(training, test) images of one epoch of a config (a TrainConfig or its dict)."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    train, test = DATASET_SIZES.get(get("dataset", "cifar10"), DATASET_SIZES["cifar10"])
    if get("train_limit", 0):
        train = min(train, get("train_limit"))
    if get("test_limit", 0):
        test = min(test, get("test_limit"))
    return train, test


@dataclass(frozen=True)
class Speed:
    images_per_second: float  # training images per second of whole epoch
    basis: str  # what it rests on, for people


def _run_speed(run: Run) -> float | None:
    if not run.epochs_done or not run.train_seconds:
        return None
    return images_per_epoch(run.config)[0] * run.epochs_done / run.train_seconds


def _device(run: Run) -> str | None:
    env = run.environment or {}
    return env.get("gpu") or env.get("device")


def measured_speed(session: Session, width: int) -> Speed | None:
    """Median speed of the latest timed runs of this width on the latest device seen; else
    the nearest measured width, scaled by width squared (the convolutions' cost); else None."""
    timed = (
        select(Run)
        .where(Run.epochs_done > 0, Run.train_seconds > 0)
        .order_by(Run.id.desc())
        .limit(200)
        # A run the request loaded before it got its first epoch must be read afresh.
        .execution_options(populate_existing=True)
    )
    runs = list(session.scalars(timed))
    by_width: dict[int, list[Run]] = {}
    for run in runs:
        by_width.setdefault(int(run.config.get("width", 64)), []).append(run)
    if not by_width:
        return None
    if width in by_width:
        return _median_speed(by_width[width], f"width {width}")
    nearest = min(by_width, key=lambda w: abs(w - width))
    speed = _median_speed(by_width[nearest], f"width {nearest}")
    if speed is None:
        return None
    scaled = speed.images_per_second * (nearest / width) ** 2
    return Speed(scaled, f"{speed.basis}, scaled to width {width} by width²")


def _median_speed(runs: list[Run], what: str) -> Speed | None:
    # Only the device of the newest run that reported one: a CPU host's runs must not
    # average with a GPU host's. Runs that have not reported a device yet stay in.
    device = next((d for d in map(_device, runs) if d), None)
    same = [r for r in runs if _device(r) in (None, device)][:RECENT_RUNS]
    speeds = [s for s in map(_run_speed, same) if s]
    where = f" on {device}" if device else ""
    plural = "s" if len(speeds) != 1 else ""
    basis = f"measured: {len(speeds)} recent run{plural} at {what}{where}"
    return Speed(statistics.median(speeds), basis) if speeds else None


def first_eta(run: Run, speed: Speed | None) -> float | None:
    """Seconds left for a running run that has not finished an epoch yet."""
    if speed is None:
        return None
    return run.epochs_total * images_per_epoch(run.config)[0] / speed.images_per_second


@dataclass(frozen=True)
class Drain:
    seconds: float | None  # None: no honest estimate
    basis: str


def drain_estimate(session: Session, live_workers: int) -> Drain:
    """Seconds until every queued and running run is done: their remaining epochs' training
    images at the measured speed of each model width, shared by the live workers (each
    assumed as fast as the measurement), and never less than the longest run left."""
    rows = session.execute(
        select(Run.config, Run.epochs_total, Run.epochs_done).where(
            Run.status.in_([s.value for s in ACTIVE])
        )
    ).all()
    if not rows:
        return Drain(0.0, "nothing queued or running")
    if live_workers == 0:
        return Drain(None, "no live worker")
    speeds: dict[int, Speed | None] = {}
    total = longest = 0.0
    for config, epochs_total, epochs_done in rows:
        width = int(config.get("width", 64))
        if width not in speeds:
            speeds[width] = measured_speed(session, width)
        speed = speeds[width]
        if speed is None:
            return Drain(None, "no run has been timed yet")
        images = max(epochs_total - epochs_done, 0) * images_per_epoch(config)[0]
        seconds = images / speed.images_per_second
        total += seconds
        longest = max(longest, seconds)
    plural = "s" if live_workers != 1 else ""
    bases = "; ".join(s.basis for s in speeds.values() if s is not None)
    return Drain(
        max(total / live_workers, longest), f"{bases}; shared by {live_workers} live worker{plural}"
    )
