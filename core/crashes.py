"""A worker process that dies tells its story: where it was, how it died, what happens next.

The worker writes a breadcrumb file (the runs it trains, as which owner, and the epoch and
batch it is in) that its supervisor reads once the process is gone; the supervisor keeps
the last lines of the process's stderr (where faulthandler prints the Python stack of a
native crash). `record_crash` puts both on every run the dead process owned: a line in the
run's log, the attempt ended as crashed, and then either the run goes back to the queue at
once (it resumes from its checkpoint) or, when it keeps killing its workers, it is failed
with a message that names the cause, so a crash loop ends.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from core import lifecycle, run_logs
from core.db import Run, RunStatus, new_session, utcnow

log = logging.getLogger(__name__)

# The supervisor names the breadcrumb file of each worker process in this variable.
BREADCRUMB_ENV = "RESNET_LAB_BREADCRUMB"

# A run that crashed its worker this many times is failed: a crash that resuming cannot
# heal (the same kernel on the same shape) hits every attempt at the same batch.
MAX_CRASHES = 3


class Breadcrumb:
    """The worker side: where training is, rewritten in place after every batch (a few
    dozen bytes; no rename, so it costs microseconds)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.runs: list[tuple[int, str, int]] = []  # (run id, owner's worker, attempt)
        self._fd: int | None = None

    @classmethod
    def from_env(cls) -> Breadcrumb:
        return cls(os.environ.get(BREADCRUMB_ENV))

    def start(self, runs: list[tuple[int, str, int]]) -> None:
        self.runs = runs
        self.at(None, None, None)

    def at(self, epoch: int | None, batch: int | None, batches: int | None) -> None:
        if self.path is None:
            return
        record = {"runs": self.runs, "epoch": epoch, "batch": batch, "batches": batches}
        data = json.dumps(record).encode().ljust(512)  # padded: no ftruncate per batch
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.pwrite(self._fd, data, 0)
        except OSError:  # a breadcrumb is a courtesy: never fail training over it
            log.debug("could not write the breadcrumb %s", self.path, exc_info=True)

    def clear(self) -> None:
        self.runs = []
        self.at(None, None, None)


def read_breadcrumb(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_bytes().strip() or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("runs") else None


def signal_name(code: int) -> str:
    """ "SIGSEGV" for a process killed by signal 11 (exit -11), "exit status 3" otherwise."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def describe_exit(code: int) -> str:
    """ "SIGSEGV, exit code -11" or "exit status 3"."""
    return f"{signal_name(code)}, exit code {code}" if code < 0 else signal_name(code)


def position(record: dict) -> str | None:
    """ "epoch 1, batch 23 of 23", or None before the first batch."""
    if record.get("epoch") is None:
        return None
    where = f"epoch {record['epoch']}"
    if record.get("batch") is not None:
        where += f", batch {record['batch']}"
        if record.get("batches"):
            where += f" of {record['batches']}"
    return where


_FRAME = re.compile(r'^\s*(File "|Thread 0x|Current thread|Stack \(most recent|<no Python frame>)')
_TELLING = re.compile(r"error|corrupt|abort|fault|assert|killed|double free", re.IGNORECASE)


def last_error(stderr_tail: list[str]) -> str | None:
    """The line of the dying process's stderr that says most about why: the last one that
    names an error (glibc's "double free or corruption", faulthandler's "Fatal Python
    error: Segmentation fault"), else its last line."""
    lines = [line.strip() for line in stderr_tail if line.strip() and not _FRAME.match(line)]
    telling = [line for line in lines if _TELLING.search(line)]
    return (telling or lines or [None])[-1]


def crash_report(stderr_tail: list[str], most: int = 30) -> list[str]:
    """What of the tail goes into the run's log: faulthandler's "Fatal Python error" line and
    the crashing thread's stack (its report lists every thread; the others are the worker's
    helpers), else the last lines."""
    starts = [i for i, line in enumerate(stderr_tail) if line.startswith("Fatal Python error")]
    if not starts:
        return stderr_tail[-20:]
    report = stderr_tail[starts[-1] :]
    current = [i for i, line in enumerate(report) if line.startswith("Current thread")]
    stack = _block(report, current[0]) if current else []
    return ([report[0]] + stack)[:most]


def _block(lines: list[str], start: int) -> list[str]:
    """lines[start:] up to the first blank line."""
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@dataclass(frozen=True)
class Death:
    """A worker process that ended with a non-zero status, as its supervisor saw it."""

    worker: str  # the node name it was started as
    code: int
    stderr_tail: list[str]
    breadcrumb: dict | None


def record_crash(death: Death, enqueue=None) -> list[tuple[int, str]]:
    """Puts the death on every run the process still owned; [(run id, what happens next)].
    `enqueue(ids)` sends the runs that go back to the queue (core.queue.enqueue)."""
    record = death.breadcrumb
    if record is None:
        return []
    how = describe_exit(death.code)
    where = position(record)
    error = last_error(death.stderr_tail)
    tail = "\n".join(line.rstrip() for line in crash_report(death.stderr_tail))
    outcomes = []
    with new_session() as session:
        for run_id, worker, attempt in record["runs"]:
            owner = lifecycle.Owner(worker, int(attempt))
            run = session.get(Run, run_id)
            if run is None or not lifecycle.owns(session, run_id, owner):
                continue  # finished, failed as stalled, or taken over: not this death's
            crashes = run.crashes + 1
            summary = f"worker {worker} died ({how})" + (f" in {where}" if where else "")
            story = summary + (f"; last stderr lines:\n{tail}" if tail else "")
            lines = [(utcnow(), "error", story)]
            if crashes >= MAX_CRASHES:
                message = (
                    f"crashed its worker {crashes} times ({signal_name(death.code)}"
                    + (f" in {where}" if where else "")
                    + ")"
                    + (f"; last error: {error}" if error else "")
                    + "\n\nRetry it to try again (a retry clears the crash count)."
                )
                lines.append((utcnow(), "error", f"run failed: {message.splitlines()[0]}"))
                run_logs.add_log_lines(session, run_id, lines)
                lifecycle.set_crashes(session, run_id, owner, crashes, where)
                lifecycle.end_attempt(session, run_id, "crashed", summary)
                lifecycle.fail(session, run_id, message, owner)
                outcomes.append((run_id, "failed"))
                continue
            lines.append(
                (utcnow(), "warning", f"run {run_id} goes back to the queue and resumes from "
                 "its last checkpoint on the next free worker")
            )  # fmt: skip
            run_logs.add_log_lines(session, run_id, lines)
            lifecycle.set_crashes(session, run_id, owner, crashes, where)
            lifecycle.end_attempt(session, run_id, "crashed", summary)
            if lifecycle.requeue(session, run_id, (RunStatus.running,), owner.condition()):
                outcomes.append((run_id, "requeued"))
    requeued = [run_id for run_id, what in outcomes if what == "requeued"]
    if requeued:
        if enqueue is None:
            from core.queue import ring as enqueue
        enqueue(requeued)
    for run_id, what in outcomes:
        log.warning("run %s: worker %s died (%s); run %s", run_id, death.worker, how, what)
    return outcomes
