"""Who this worker process is, in the database's owner fields and the workers table."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    # Unique per process: a restarted worker on the same host is a different owner.
    return f"{socket.gethostname()}:{os.getpid()}"
