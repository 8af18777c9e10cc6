"""Runs one client may submit per minute (SUBMIT_RATE_PER_MINUTE): 429 with Retry-After
past it. The window lives in the process, as the app does."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from fastapi import HTTPException, Request

from core.config import Settings


class SubmissionLimiter:
    """Sliding one-minute window of runs submitted per client address."""

    def __init__(self) -> None:
        self._events: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, client: str, runs: int, per_minute: int) -> float | None:
        """Records the submission, or returns seconds to wait when it would exceed."""
        now = time.monotonic()
        with self._lock:
            window = self._events[client]
            while window and window[0][0] <= now - 60:
                window.popleft()
            used = sum(n for _, n in window)
            if used + runs > per_minute:
                return max(60 - (now - window[0][0]), 1.0) if window else 60.0
            window.append((now, runs))
            return None


limiter = SubmissionLimiter()


def limit_submissions(request: Request, runs: int, settings: Settings) -> None:
    client = request.client.host if request.client else "unknown"
    wait = limiter.take(client, runs, settings.submit_rate_per_minute)
    if wait is not None:
        raise HTTPException(
            429,
            f"too many runs submitted: at most {settings.submit_rate_per_minute} per minute",
            headers={"Retry-After": str(int(wait) + 1)},
        )
