"""A thread that keeps a running run's heartbeat fresh and notices cancel requests."""

from __future__ import annotations

import threading
import time

from app import lifecycle
from app.db import new_session


class Heartbeat(threading.Thread):
    """Checks every `poll` seconds for a cancel; writes the heartbeat every `interval`.

    `stop_requested` is set when a cancel was asked for or the run is no longer this
    worker's (the reaper gave it away): the trainer then stops between batches.
    """

    def __init__(self, run_id: int, worker: str, interval: float, poll: float = 1.0):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id = run_id
        self.worker = worker
        self.interval = interval
        self.poll = min(poll, interval)
        self.stop_requested = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(self.poll):
            try:
                with new_session() as session:
                    if time.monotonic() - last_beat >= self.interval:
                        owned = lifecycle.heartbeat(session, self.run_id, self.worker)
                        last_beat = time.monotonic()
                        if not owned:
                            self.stop_requested.set()
                    if lifecycle.cancel_requested(session, self.run_id):
                        self.stop_requested.set()
            except Exception:  # a database hiccup must not kill the run; retry next tick
                continue

    def close(self) -> None:
        self._done.set()
        self.join(timeout=10)
