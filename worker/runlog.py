"""The worker's log lines while it trains a run, kept with the run (the run page's Logs
panel): a logging handler buffers them, the heartbeat thread writes them every tick."""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime

from core import run_logs
from core.db import utcnow

# Lines waiting for the next write; a flood between two ticks keeps the newest.
BUFFERED = 1000


class RunLogHandler(logging.Handler):
    def __init__(self, level: int = logging.INFO):
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self._lines: deque[tuple[datetime, str, str]] = deque(maxlen=BUFFERED)
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (utcnow(), record.levelname.lower(), self.format(record))
        except Exception:  # a bad format string must not break training
            return
        with self._lock:
            self._lines.append(line)

    def drain(self) -> list[tuple[datetime, str, str]]:
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
        return lines

    def write(self, session, run_ids) -> None:
        """Every buffered line to each of the runs (a pack's lines concern all of them)."""
        lines = self.drain()
        for run_id in run_ids:
            run_logs.add_log_lines(session, run_id, lines)

    def __enter__(self) -> RunLogHandler:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)
