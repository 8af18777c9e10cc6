"""A worker's epoch rows, written in order, and kept through a database outage.

Training does not wait for the database: an epoch whose row cannot be written (the server
is down or restarting, SQLite is locked past its busy timeout) is kept in memory, and the
heartbeat thread writes the rows kept, in order, as soon as the database answers again, so
the run carries on as the same attempt. Every try backs off (up to the heartbeat interval,
so the first heartbeat after an outage lands well within HEARTBEAT_TIMEOUT). Only past
DB_OUTAGE_GRACE does training stop (DatabaseUnreachable); a database whose disk is full is
no outage to wait out, and stops it at once (DatabaseFull).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core import lifecycle
from core.db import new_session
from core.outages import disk_full, is_outage
from trainer.results import EpochMetrics

log = logging.getLogger(__name__)

UNREACHABLE = "unreachable"
FULL = "full"


def database_problem(exc: BaseException) -> str | None:
    """FULL, UNREACHABLE (connection or lock problems: retried), or None for an error that
    is no outage (a bug, a constraint): that one is raised as usual."""
    if disk_full(exc):
        return FULL
    return UNREACHABLE if is_outage(exc) else None


class EpochsNotRecorded(RuntimeError):
    """Training stops: its epochs cannot be recorded. The message says why and what next."""

    told = False  # logged already (a pack's members share one)


class DatabaseUnreachable(EpochsNotRecorded):
    pass


class DatabaseFull(EpochsNotRecorded):
    pass


@dataclass(frozen=True)
class _Row:
    run_id: int
    owner: lifecycle.Owner
    metrics: EpochMetrics


class EpochWriter:
    """The epoch rows of the runs one worker process trains, written in the order trained.

    `add` (the training thread) writes a row at once, unless an outage is known: then the
    row is kept and `retry` (the heartbeat thread, every tick that backoff allows) writes
    it, so a locked SQLite database or a server that does not answer never holds a batch.
    `failed` and `reached` tell it how other database work went (heartbeats). `check`
    raises, on the training thread, the reason to stop once there is one; `drain` waits
    (within the grace) until a run's rows are written, before its outcome is.
    """

    def __init__(
        self,
        grace: float,
        *,
        runs: Callable[[], Iterable[int]] = tuple,
        lose: Callable[[int], None] = lambda run_id: None,
        after_write: Callable[[object], None] | None = None,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sessions: Callable[[], object] = new_session,
    ):
        self.grace = grace
        self._runs = runs  # the runs still training, for the message that stops them
        self._lose = lose  # a row refused: the run is no longer this worker's
        self._after_write = after_write  # more to write with the rows (the run logs)
        self._first_delay = first_delay
        self._max_delay = max(first_delay, max_delay)
        self._clock = clock
        self._sessions = sessions
        self._rows: deque[_Row] = deque()
        self._last_epoch: dict[int, int] = {}
        self._state = threading.Lock()  # rows and outage state, shared by both threads
        self._writing = threading.Lock()  # one writer at a time, so rows stay in order
        self._since: float | None = None  # the first failure of the outage under way
        self._delay = 0.0
        self._next_try = 0.0
        self._told = False  # "kept in memory" said for this outage
        self._fatal: EpochsNotRecorded | None = None

    # The training thread.

    def add(self, run_id: int, owner: lifecycle.Owner, metrics: EpochMetrics) -> None:
        self.check()
        with self._state:
            self._rows.append(_Row(run_id, owner, metrics))
            self._last_epoch[run_id] = metrics.epoch
            outage = self._since is not None
        if not outage:  # written now: before the epoch's checkpoint, as without an outage
            self._write(blocking=True)
        if self.pending(run_id):
            self._kept(run_id, metrics.epoch)
        self.check()

    def check(self) -> None:
        """Raises the reason training must stop, once there is one."""
        if self._fatal is not None:
            raise self._fatal

    def drain(self, run_id: int) -> None:
        """Writes the run's kept rows, waiting while the database is out of reach; raises
        when the grace runs out first (or the disk is full)."""
        while self.pending(run_id):
            self.check()
            if self.due():
                self._write(blocking=True)
            if self.pending(run_id):
                time.sleep(min(self._max_delay, max(0.01, self._next_try - self._clock())))

    # The heartbeat thread.

    def retry(self) -> None:
        """Writes the rows kept, if backoff allows and the training thread is not writing."""
        if self._rows and self.due():
            self._write(blocking=False)

    def due(self) -> bool:
        """False while backing off after a failed try."""
        return self._clock() >= self._next_try

    def failed(self, exc: BaseException) -> bool:
        """Notes a failed database call; False (nothing noted) when it was no outage."""
        kind = database_problem(exc)
        if kind is None:
            return False
        now = self._clock()
        with self._state:
            if kind == FULL:
                self._fatal = self._fatal or DatabaseFull(self._full_message(exc))
                return True
            if self._since is None:
                self._since, self._delay = now, self._first_delay
                log.warning("database unreachable (%s); training goes on, retrying for up to "
                            "%s (DB_OUTAGE_GRACE)", _short(exc), _seconds(self.grace))  # fmt: skip
            else:
                self._delay = min(2 * self._delay, self._max_delay)
            self._next_try = now + self._delay
            if now - self._since > self.grace and self._fatal is None:
                self._fatal = DatabaseUnreachable(self._unreachable_message())
        return True

    def reached(self) -> None:
        """A database call succeeded: the outage, if there was one, is over."""
        with self._state:
            since, self._since = self._since, None
            self._delay = self._next_try = 0.0
            self._told = False
        if since is not None:
            log.warning("database reachable again after %s", _seconds(self._clock() - since))

    def forget(self, run_id: int) -> None:
        """Drops the run's rows: it is no longer this worker's to write."""
        with self._state:
            self._rows = deque(row for row in self._rows if row.run_id != run_id)

    def pending(self, run_id: int | None = None) -> int:
        with self._state:
            return sum(1 for row in self._rows if run_id in (None, row.run_id))

    def _write(self, blocking: bool) -> None:
        if not self._writing.acquire(blocking=blocking):
            return  # the other thread is writing them now
        try:
            written = self._write_rows()
        except Exception as exc:
            if not self.failed(exc):
                raise
        else:
            if written:
                log.info("epoch rows written after the outage: %s", _epochs(written))
            self.reached()
        finally:
            self._writing.release()

    def _write_rows(self) -> list[_Row]:
        """Every kept row, in order, then what goes with them; the rows that were kept."""
        with self._state:
            kept = list(self._rows) if self._since is not None else []
        with self._sessions() as session:
            while (row := self._first()) is not None:
                if lifecycle.record_epoch(session, row.run_id, row.metrics, row.owner):
                    self._done(row)
                else:
                    self.forget(row.run_id)
                    self._lose(row.run_id)
            if self._after_write is not None:
                self._after_write(session)
        return kept

    def _first(self) -> _Row | None:
        with self._state:
            return self._rows[0] if self._rows else None

    def _done(self, row: _Row) -> None:
        with self._state:
            if self._rows and self._rows[0] is row:
                self._rows.popleft()

    def _kept(self, run_id: int, epoch: int) -> None:
        with self._state:
            first, self._told = not self._told, True
        if first:
            log.warning("database unreachable: epoch %s of run %s kept in memory, retrying "
                        "for up to %s (DB_OUTAGE_GRACE)", epoch, run_id,
                        _seconds(self.grace))  # fmt: skip
        else:
            log.info("epoch %s of run %s kept in memory (%s rows waiting)", epoch, run_id,
                     self.pending())  # fmt: skip

    def _unreachable_message(self) -> str:
        return (
            f"the database was unreachable for more than {_seconds(self.grace)} "
            f"(DB_OUTAGE_GRACE); stopped training {self._where()}; it resumes from its last "
            "checkpoint when a worker can reach the database"
        )

    def _full_message(self, exc: BaseException) -> str:
        return (
            f"the database's disk is full ({_short(exc)}); stopped training {self._where()}, "
            "as no epoch can be recorded. Once there is free space where the database lives, "
            "a run resumes from its last checkpoint (retry it if it was marked failed)"
        )

    def _where(self) -> str:
        """'run 7 after epoch 5', 'runs 7 (after epoch 5) and 8 (before finishing an epoch)'."""
        runs = sorted(set(self._runs()) | {row.run_id for row in self._rows})
        if not runs:
            return "its runs"

        def after(run_id: int) -> str:
            epoch = self._last_epoch.get(run_id)
            return "before finishing an epoch" if epoch is None else f"after epoch {epoch}"

        if len(runs) == 1:
            return f"run {runs[0]} {after(runs[0])}"
        parts = [f"{run_id} ({after(run_id)})" for run_id in runs]
        return f"runs {', '.join(parts[:-1])} and {parts[-1]}"


def give_up(exc: EpochsNotRecorded, owners: Iterable[tuple[int, lifecycle.Owner]]) -> None:
    """Says why training stopped, once. A run whose disk is full is marked failed with the
    reason, if the database still takes that one write; an unreachable one is left running:
    its heartbeat goes stale and a worker resumes it when the database is back."""
    if not exc.told:
        exc.told = True
        log.error("%s", exc)
    if not isinstance(exc, DatabaseFull):
        return
    try:
        with new_session() as session:
            for run_id, owner in owners:
                lifecycle.fail(session, run_id, str(exc), owner)
    except Exception:  # the disk is full: the reason stays in the worker's log
        log.warning("could not mark runs failed: the database cannot be written", exc_info=True)


def _epochs(rows: list[_Row]) -> str:
    runs: dict[int, list[int]] = {}
    for row in rows:
        runs.setdefault(row.run_id, []).append(row.metrics.epoch)
    return "; ".join(f"run {run_id} epochs {epochs}" for run_id, epochs in runs.items())


def _seconds(value: float) -> str:
    return f"{round(value, 1):g} s"


def _short(exc: BaseException) -> str:
    """The driver's own words, first line only."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
