"""Worker processes under supervision, for `resnet-lab serve` and `resnet-lab worker`.

A worker process can die in ways Celery cannot catch: abort() or SIGSEGV in native code, or
its own exit after giving up a stalled run (worker.heartbeat). The supervisor starts a new
one in its place (the dead one's run resumes from its checkpoint through the heartbeat
recovery). Stopping is bounded: SIGTERM asks each worker for a warm shutdown (the run goes
back to the queue between batches), and whatever is still alive after the grace period,
a worker stuck in native code or SIGSTOPped, is SIGKILLed. Children also die with the
supervisor (PR_SET_PDEATHSIG), so not even a SIGKILLed supervisor leaves one behind.

A worker that dies by a signal or an error status is described to `on_death` (in `serve`
and `worker`: core.crashes.record_crash, which tells the story on the runs it trained):
its exit, the breadcrumb it left (which runs, which epoch and batch) and the last lines of
its stderr, which the supervisor passes through to its own stderr and keeps a tail of.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from core.crashes import BREADCRUMB_ENV, Death, describe_exit, read_breadcrumb

log = logging.getLogger(__name__)

# A worker that dies sooner than this after its start counts towards the crash back-off.
QUICK_DEATH_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 60.0
# Lines of a worker's stderr kept for the story of its death (faulthandler's stack included).
STDERR_TAIL = 400


def _die_with_parent() -> None:
    # SIGKILL, not SIGTERM: a worker stuck in native code never runs a Python handler.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Child:
    """One supervised worker process slot: its command, its process, its crash history, its
    breadcrumb file and the tail of its stderr."""

    def __init__(self, command: list[str], env: dict[str, str], breadcrumb: Path):
        self.command = command
        self.env = {**env, BREADCRUMB_ENV: str(breadcrumb)}
        self.breadcrumb = breadcrumb
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.quick_deaths = 0
        self.restart_at = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The Celery node name it was started with (--hostname), for logs."""
        if "--hostname" in self.command:
            return self.command[self.command.index("--hostname") + 1]
        return " ".join(self.command[:3])

    def start(self) -> None:
        self.breadcrumb.unlink(missing_ok=True)
        self.stderr_tail.clear()
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(
            target=_tee, args=(self.proc.stderr, self.stderr_tail), daemon=True
        )
        self._reader.start()
        self.started = time.monotonic()

    def death(self, code: int) -> Death:
        if self._reader is not None:
            self._reader.join(timeout=2)  # the last lines the process wrote
        return Death(self.name, code, list(self.stderr_tail), read_breadcrumb(self.breadcrumb))


def _tee(stream, tail: deque[str]) -> None:
    """Passes a child's stderr through to ours, keeping its last lines."""
    out = getattr(sys.stderr, "buffer", None)
    for raw in iter(stream.readline, b""):
        tail.append(raw.decode(errors="replace").rstrip("\n"))
        try:
            if out is not None:
                out.write(raw)
                out.flush()
        except (OSError, ValueError):
            out = None  # our stderr went away: keep the tail all the same
    stream.close()


class Supervisor:
    """Starts the workers, replaces any that dies, stops them all within `grace` seconds."""

    def __init__(
        self,
        commands: list[list[str]],
        env_for: Callable[[int], dict[str, str]],
        grace: float,
        poll: float = 0.5,
        on_death: Callable[[Death], None] | None = None,
    ):
        self._crumbs = Path(tempfile.mkdtemp(prefix="resnet-lab-workers-"))
        self.children = [
            Child(cmd, env_for(i), self._crumbs / f"worker-{i}.json")
            for i, cmd in enumerate(commands)
        ]
        self.on_death = on_death
        self.grace = grace
        self.poll = poll
        self.stopping = threading.Event()
        self.hurry = threading.Event()  # a second stop request: skip the grace period
        self.restarts = 0

    def start(self) -> None:
        for child in self.children:
            child.start()

    def watch(self) -> None:
        """Replaces dead workers until stop() is called (run it in a thread, or as main)."""
        while not self.stopping.wait(self.poll):
            for child in self.children:
                self._check(child)

    def _check(self, child: Child) -> None:
        if child.proc is None:
            if time.monotonic() >= child.restart_at:
                child.start()
            return
        code = child.proc.poll()
        if code is None:
            return
        if code == 0:
            log.info("worker %s exited", child.proc.pid)
            child.proc = None
            child.restart_at = float("inf")  # asked to stop (celery control shutdown)
            return
        lived = time.monotonic() - child.started
        child.quick_deaths = child.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        delay = min(2.0**child.quick_deaths - 1, MAX_BACKOFF_SECONDS)
        log.warning(
            "worker %s died (%s) after %.0f s; starting a new one in %.0f s",
            child.proc.pid, describe_exit(code), lived, delay,
        )  # fmt: skip
        if self.on_death is not None and not self.stopping.is_set():
            try:
                self.on_death(child.death(code))
            except Exception:  # the database may be down too: the heartbeat timeout remains
                log.exception("could not record the death of worker %s", child.proc.pid)
        self.restarts += 1
        child.proc = None
        child.restart_at = time.monotonic() + delay

    def stop(self) -> None:
        """Warm shutdown, then SIGKILL after the grace period; returns when all are gone."""
        self.stopping.set()
        live = [c.proc for c in self.children if c.proc and c.proc.poll() is None]
        for proc in live:
            _signal(proc, signal.SIGTERM)
            _signal(proc, signal.SIGCONT)  # a stopped worker must wake to see the SIGTERM
        deadline = time.monotonic() + self.grace
        while any(p.poll() is None for p in live):
            if self.hurry.is_set() or time.monotonic() >= deadline:
                for proc in live:
                    if proc.poll() is None:
                        log.warning("worker %s did not stop in time; killing it", proc.pid)
                        _signal(proc, signal.SIGKILL)
                for proc in live:
                    proc.wait()
                break
            time.sleep(0.05)
        shutil.rmtree(self._crumbs, ignore_errors=True)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def run_until_signalled(supervisor: Supervisor) -> int:
    """`resnet-lab worker`: supervise in the foreground; SIGTERM or Ctrl-C stops (a second
    one skips the grace period)."""

    def on_signal(signum, _frame) -> None:
        if supervisor.stopping.is_set():
            supervisor.hurry.set()
        supervisor.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    supervisor.start()
    supervisor.watch()
    supervisor.stop()
    return 0


def share_threads(workers: int) -> int:
    """Intra-op threads per worker so that `workers` of them share this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(workers, 1))
