"""A thread beside the training loop: heartbeats with progress, cancel and takeover notices,
and the stall watchdog.

The training thread only touches `Watch` (a batch finished, should I stop?); this thread
does the database work every `poll` seconds, so a slow database never slows a batch. While
the database is out of reach, its ticks back off, retry the epoch rows kept in memory
(worker.epochs) before the heartbeat, and keep the run's log lines for the next try.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

from core import lifecycle, run_logs
from core.config import get_settings
from core.db import new_session, utcnow
from worker.epochs import EpochWriter
from worker.runlog import BUFFERED

log = logging.getLogger(__name__)

# Exit status of a worker process that gave up a stuck run: its supervisor starts a new one.
STALLED_EXIT = 75


class Watch:
    """Progress of the training thread, as the heartbeat thread reads it."""

    def __init__(self, recent: int = 200):
        self.batches = 0
        self.started: float | None = None  # monotonic: training began (data loaded)
        self.last_batch: float | None = None
        self.last_batch_wall = None
        self._durations: deque[float] = deque(maxlen=recent)

    def training_started(self) -> None:
        if self.started is None:
            self.started = self.last_batch = time.monotonic()
            self.last_batch_wall = utcnow()  # the stall clock starts once the data is loaded

    def batch_done(self) -> None:
        now = time.monotonic()
        if self.last_batch is not None:
            self._durations.append(now - self.last_batch)
        self.batches += 1
        self.last_batch = now
        self.last_batch_wall = utcnow()

    def median_batch_seconds(self) -> float | None:
        return statistics.median(self._durations) if self._durations else None

    def seconds_since_progress(self) -> float:
        return 0.0 if self.last_batch is None else time.monotonic() - self.last_batch

    def progress(self) -> lifecycle.Progress:
        return lifecycle.Progress(self.batches, self.last_batch_wall, self.median_batch_seconds())


class Heartbeat(threading.Thread):
    """For the runs one worker process trains (one, or the members of a pack): writes each
    heartbeat (with progress) every `interval`, checks for cancels every `poll` seconds, and
    gives up stuck runs.

    `stop_requested[run_id]` is set when a cancel was asked for or the run is no longer this
    owner's (another worker took it over; `superseded[run_id]` says which): the trainer then
    stops that run between batches. When no batch has finished for `lifecycle.stall_limit`,
    every run still owned is failed as stalled and `on_stall` runs: in a worker it ends the
    process, since a thread stuck in native code cannot be stopped.
    """

    def __init__(
        self,
        owners: dict[int, lifecycle.Owner],
        watch: Watch,
        *,
        interval: float,
        stall_timeout: float,
        on_stall: Callable[[], None] | None = None,
        logs=None,
        poll: float = 1.0,
        outage_grace: float | None = None,
    ):
        super().__init__(name=f"heartbeat-{min(owners)}", daemon=True)
        self.logs = logs  # a worker.runlog.RunLogHandler, written every tick
        self.owners = dict(owners)
        self.watch = watch
        self.interval = interval
        self.stall_timeout = stall_timeout
        self.on_stall = on_stall or _exit_process
        self.poll = min(poll, interval)
        self.stop_requested = {run_id: threading.Event() for run_id in owners}
        self.superseded = {run_id: threading.Event() for run_id in owners}
        self.finished: set[int] = set()  # runs that left: no more heartbeats for them
        self._done = threading.Event()
        # Log lines drained but not yet written, per run: kept through an outage.
        self._unwritten: dict[int, deque] = {}
        self._log_lock = threading.Lock()
        # The epoch rows, in order; backing off up to one interval after a failed try, so
        # that the first heartbeat after an outage lands long before HEARTBEAT_TIMEOUT.
        grace = get_settings().db_outage_grace if outage_grace is None else outage_grace
        self.epochs = EpochWriter(
            grace,
            runs=lambda: [run_id for run_id, _ in self._live()],
            lose=self.lose,
            after_write=self.flush_logs,
            first_delay=min(0.5, interval),
            max_delay=interval,
        )

    def lose(self, run_id: int) -> None:
        """The run is no longer this worker's: stop it and never write to it again."""
        self.superseded[run_id].set()
        self.stop_requested[run_id].set()
        self.epochs.forget(run_id)

    def run(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(self.poll):
            if not self.epochs.due():
                continue  # backing off: the database did not answer the last try
            try:
                self.epochs.retry()  # epochs kept through an outage first, in order
                if not self.epochs.due():
                    continue  # they could not be written: nor could the heartbeat
                with new_session() as session:
                    if self._stalled(session):
                        return
                    beat = time.monotonic() - last_beat >= self.interval
                    progress = self.watch.progress()
                    for run_id, owner in self._live():
                        if beat and not lifecycle.heartbeat(session, run_id, owner, progress):
                            self.lose(run_id)
                        if lifecycle.cancel_requested(session, run_id):
                            self.stop_requested[run_id].set()
                    if beat:
                        last_beat = time.monotonic()
                    self.flush_logs(session, wait=False)
                self.epochs.reached()
            except Exception as exc:  # a database hiccup must not kill the run; retry
                if not self.epochs.failed(exc):
                    log.debug("heartbeat of runs %s failed; retrying", list(self.owners),
                              exc_info=True)  # fmt: skip
                continue

    def flush_logs(self, session, wait: bool = True) -> None:
        """Writes the buffered log lines to the live runs now (each tick, and with each
        epoch's row, so that a crash loses no line from before its epoch). A tick does not
        wait while the training thread writes them."""
        self._write_logs(session, [run_id for run_id, _ in self._live()], wait)

    def _write_logs(self, session, run_ids: list[int], wait: bool = True) -> None:
        if self.logs is None:
            return
        if not (self._log_lock.acquire(timeout=10) if wait else self._log_lock.acquire(False)):
            return
        try:
            lines = self.logs.drain()
            for run_id in run_ids:
                self._unwritten.setdefault(run_id, deque(maxlen=BUFFERED)).extend(lines)
            for run_id in run_ids:
                kept = self._unwritten[run_id]
                if kept:  # cleared once written: a failed write keeps them for the next try
                    run_logs.add_log_lines(session, run_id, list(kept))
                    kept.clear()
        finally:
            self._log_lock.release()

    def _live(self) -> list[tuple[int, lifecycle.Owner]]:
        return [
            (run_id, owner)
            for run_id, owner in self.owners.items()
            if run_id not in self.finished and not self.superseded[run_id].is_set()
        ]

    def _stalled(self, session) -> bool:
        if self.watch.started is None or self._done.is_set():
            return False  # still loading data, or finished
        idle = self.watch.seconds_since_progress()
        limit = lifecycle.stall_limit(self.stall_timeout, self.watch.median_batch_seconds())
        if idle < limit:
            return False
        message = f"stalled: no batch finished in {idle:.0f} s (limit {limit:.0f} s)"
        live = self._live()
        log.error("runs %s %s; giving up and replacing this worker process", live, message)
        for run_id, owner in live:
            lifecycle.fail(session, run_id, message, owner)
        self._write_logs(session, [run_id for run_id, _ in live])
        self.on_stall()
        return True

    def close(self) -> None:
        self._done.set()
        self.join(timeout=10)
        if self.logs is not None:  # the last lines, written by whoever is left
            try:
                with new_session() as session:
                    self._write_logs(session, list(self.owners))
            except Exception:
                log.debug("could not write the last log lines", exc_info=True)


def _exit_process() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(STALLED_EXIT)
