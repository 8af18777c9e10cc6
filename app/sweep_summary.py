"""A grid's summary (app.stats.summarize over its runs), worked out once per state of its runs.

Every open grid page asks for its summary and heatmap cells every few seconds, and a grid's
runs change far less often than that. A summary is a pure function of the runs' facts, so it
is kept under those facts themselves (ids, statuses, accuracies, epochs, seconds: one
narrow read) and recomputed, with the configs read, only when one of them differs. A run's
config never changes after it is queued, so its id stands for it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from cachetools import LRUCache
from sqlalchemy import select

from app.stats import summarize
from core.db import Run, RunStatus

_FACTS = (Run.id, Run.status, Run.final_test_acc, Run.epochs_done, Run.epochs_total,
          Run.train_seconds)  # fmt: skip
# Sized by runs summed up (a summary holds a few hundred bytes per run): 20,000 is ~10 MB.
_cache: LRUCache = LRUCache(maxsize=20_000, getsizeof=lambda s: max(s["total_runs"], 1))
_lock = threading.Lock()  # cachetools' caches are not thread-safe; endpoints run in threads


def sweep_facts(session, sweep_id: int) -> list[dict[str, Any]]:
    """What the summary reads of each of the grid's runs, in id order, as plain dicts."""
    query = select(*_FACTS, Run.config).where(Run.sweep_id == sweep_id).order_by(Run.id)
    facts = [row._asdict() for row in session.execute(query)]
    for fact in facts:
        fact["status"] = RunStatus(fact["status"]).value
    return facts


def sweep_summary(
    session, sweep_id: int, factors: list[str], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """summarize() of the grid's runs over `factors`; the caller must not change it."""
    rows = session.execute(select(*_FACTS).where(Run.sweep_id == sweep_id).order_by(Run.id))
    # The facts as a digest: a key the size of a 10,000-run grid would outweigh its summary.
    state = hashlib.blake2b(repr(tuple(rows)).encode(), digest_size=16).digest()
    key = (sweep_id, tuple(factors), repr(sorted((baseline or {}).items())), state)
    with _lock:
        summary = _cache.get(key)
    if summary is None:
        summary = summarize(sweep_facts(session, sweep_id), factors, baseline)
        with _lock:
            _cache[key] = summary
    return summary
