"""Runs' epoch rows, as rows (the metrics endpoints' default and the event streams) or in
columns: one list per field per run (`?format=columns`), the form the pages draw curves from.

A 36-run curves call reads 7,200 epoch rows. Read as plain tuples (Core, no ORM objects)
and transposed in one step per run, they cost no dict per epoch, and the JSON names each
field once per run instead of once per epoch (about a third of the bytes).

Pages ask for the same curves again and again (every reload, every open tab), and a run's
epochs change only with its `updated_at` (each recorded epoch bumps it), so each run's JSON
is kept by (id, updated_at, format) in a small LRU: a finished grid's curves are read from
the database once per web process.
"""

from __future__ import annotations

import threading
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jsonio import dumps
from core.db import METRIC_FIELDS, Metric, Run

Format = Literal["rows", "columns"]
# About 350 finished 200-epoch runs in both forms; bytes, not entries, bound it.
CACHE_BYTES = 32 * 2**20
_cache: LRUCache = LRUCache(maxsize=CACHE_BYTES, getsizeof=len)
_lock = threading.Lock()  # cachetools' caches are not thread-safe; endpoints run in threads

_COLUMNS = [getattr(Metric, f) for f in METRIC_FIELDS]


def empty() -> dict[str, list]:
    return {f: [] for f in METRIC_FIELDS}


def metric_columns(session: Session, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each run's epochs as {field: [value per epoch]}, in epoch order, for every id given
    (an id without epochs gets empty lists)."""
    out: dict[int, dict[str, Any]] = {run_id: empty() for run_id in run_ids}
    if not run_ids:
        return out
    query = (
        select(Metric.run_id, *_COLUMNS)
        .where(Metric.run_id.in_(run_ids))
        .order_by(Metric.run_id, Metric.epoch)
    )
    # Streamed, one run's rows at a time: 7,200 row objects alive at once would set off the
    # garbage collector's full passes (a tenth of a second, every few calls).
    rows = session.connection().execute(query)
    for run_id, group in groupby(rows, key=itemgetter(0)):
        _, *fields = zip(*group)
        out[run_id] = dict(zip(METRIC_FIELDS, fields))
    return out


def metric_rows(
    session, run_ids: list[int], after: dict[int, int] | None = None
) -> dict[int, list[dict]]:
    """Epoch rows per run, in epoch order; with `after`, only epochs past each run's mark
    (what the event streams have not sent yet)."""
    query = select(Metric.run_id, *_COLUMNS).where(Metric.run_id.in_(run_ids))
    after = after or {}
    if after:
        query = query.where(Metric.epoch > min(after.values()))
    # Core, not ORM, execution: a 36-run curves call reads 7,200 rows.
    rows = session.connection().execute(query.order_by(Metric.run_id, Metric.epoch))
    by_run: dict[int, list[dict]] = {run_id: [] for run_id in run_ids}
    for run_id, *values in rows:
        if values[0] > after.get(run_id, 0):
            by_run[run_id].append(dict(zip(METRIC_FIELDS, values)))
    return by_run


def curves_json(session: Session, runs: list[tuple[int, datetime]], format: Format) -> list[bytes]:
    """Each run's curves as a JSON object (`{"run_id", **columns}` or `{"run_id", "epochs"}`),
    for (id, updated_at) pairs read BEFORE this call: epochs recorded in between land under
    the older stamp, which is never asked for again, so nothing stale is served."""
    keys = [(run_id, stamp, format) for run_id, stamp in runs]
    with _lock:
        found = {key: _cache.get(key) for key in keys}
    missing = [key for key, value in found.items() if value is None]
    if missing:
        read = metric_columns if format == "columns" else metric_rows
        fresh = read(session, [run_id for run_id, _, _ in missing])
        for key in missing:
            data = fresh[key[0]]
            fields = data if format == "columns" else {"epochs": data}
            found[key] = dumps({"run_id": key[0], **fields})
        with _lock:
            for key in missing:
                if len(found[key]) <= CACHE_BYTES // 8:  # one huge run may not empty it
                    _cache[key] = found[key]
    return [found[key] for key in keys]


def stamps(session: Session, run_ids: list[int]) -> list[tuple[int, datetime]]:
    """(id, updated_at) of the runs that exist among `run_ids`, in the order given."""
    known = dict(session.execute(select(Run.id, Run.updated_at).where(Run.id.in_(run_ids))).all())
    return [(i, known[i]) for i in run_ids if i in known]
