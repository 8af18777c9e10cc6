"""One poller per web process for the server-sent event streams.

Every open stream subscribes here. A single task reads what changed for all of them, in at
most three queries a tick whatever the number of streams, and hands each subscriber its
events through a bounded in-memory queue. A stream holds no database connection: only the
poll does, for one short session in a worker thread. The database stays the source of truth
(workers write from other processes), so polling it in one place is all a process needs.

Each tick:
  1. the state (sweep, status, updated_at, epochs_done) of every followed run: a narrow
     read whose size is the number of distinct runs followed, not of streams. Comparing
     each run's state with the last one loaded, rather than asking "what changed since the
     last tick" by timestamp, also sees commits that land out of timestamp order and runs
     that were deleted;
  2. the full rows of the runs whose state changed, or that a new stream has not been
     shown yet, serialised once for all of their subscribers;
  3. the epochs past the lowest mark any subscriber of a run holds, for the runs whose
     `epochs_done` passed it.
Polling stops while no one subscribes.

A subscriber that falls QUEUE_BATCHES ticks behind (its client stopped reading) is dropped:
its stream closes after what was queued, and the client reconnects and catches up from the
API. Coalescing instead would have to merge epochs, which cannot be merged without loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sqlalchemy import or_, select
from sse_starlette import ServerSentEvent

from app.curves import metric_rows
from app.jsonio import dumps
from app.run_view import run_out
from core.db import FINAL, Run, RunStatus, new_session

log = logging.getLogger(__name__)

QUEUE_BATCHES = 64  # ticks' worth of events a subscriber may have unread
SWEEP_END_RETRY_MS = 30_000

# An event as it goes on the wire, encoded once however many streams send it; a stream
# sends one tick's events in one write.
Event = bytes


def event(name: str, data, retry_ms: int | None = None) -> Event:
    return ServerSentEvent(dumps(data).decode(), event=name, retry=retry_ms).encode()


@dataclass(frozen=True)
class _State:
    sweep_id: int | None
    status: RunStatus
    updated_at: datetime
    epochs_done: int


@dataclass(eq=False)
class Subscription:
    """One open stream: of a run (`key` is its id) or of a sweep (`key` is the sweep's id)."""

    kind: Literal["run", "sweep"]
    key: int
    # run id -> last epoch sent (a run stream starts at after_epoch, a sweep stream at the
    # epochs stored when it connected: older ones come from /api/metrics).
    last_epoch: dict[int, int]
    send: MemoryObjectSendStream[list[Event]]
    receive: MemoryObjectReceiveStream[list[Event]]
    # run id -> the state last sent; empty until the first delivery.
    seen: dict[int, _State] = field(default_factory=dict)
    fresh: bool = True


@dataclass(frozen=True)
class _Plan:
    """What one tick reads, fixed before it leaves the event loop."""

    run_ids: frozenset[int]
    sweep_ids: frozenset[int]
    fresh_runs: frozenset[int]
    fresh_sweeps: frozenset[int]
    known: dict[int, _State]  # run id -> the state an earlier tick loaded
    floors: dict[int, int]  # run id -> lowest last epoch among its subscribers


@dataclass
class _Read:
    states: dict[int, _State]
    status_events: dict[int, Event]  # for run streams: the run with its result
    run_events: dict[int, Event]  # for sweep streams: the run without its result
    # run id -> (epoch, {"run": event for run streams, "sweep": event with run_id})
    epochs: dict[int, list[tuple[int, dict[str, Event]]]]


def _state(run) -> _State:
    return _State(run.sweep_id, RunStatus(run.status), run.updated_at, run.epochs_done)


def _epoch_events(row: dict, run_id: int, plan: _Plan, state: _State) -> dict[str, Event]:
    """One epoch's event, serialised once per kind of stream that follows the run."""
    events = {}
    if run_id in plan.run_ids:
        events["run"] = event("epoch", row)
    if state.sweep_id in plan.sweep_ids:
        events["sweep"] = event("epoch", {"run_id": run_id, **row})
    return events


def _read(plan: _Plan) -> _Read:
    """The tick's database work, in a worker thread: one session, at most three queries."""
    follows = []
    if plan.run_ids:
        follows.append(Run.id.in_(plan.run_ids))
    if plan.sweep_ids:
        follows.append(Run.sweep_id.in_(plan.sweep_ids))
    with new_session() as session:
        narrow = select(Run.id, Run.sweep_id, Run.status, Run.updated_at, Run.epochs_done)
        states = {row.id: _state(row) for row in session.execute(narrow.where(or_(*follows)))}
        stale = [
            run_id
            for run_id, state in states.items()
            if plan.known.get(run_id) != state
            or run_id in plan.fresh_runs
            or state.sweep_id in plan.fresh_sweeps
        ]
        status_events: dict[int, Event] = {}
        run_events: dict[int, Event] = {}
        if stale:
            for run in session.scalars(select(Run).where(Run.id.in_(stale))):
                states[run.id] = _state(run)  # newer than the narrow read
                if run.id in plan.run_ids:
                    status_events[run.id] = event("status", run_out(run))
                if run.sweep_id in plan.sweep_ids:
                    run_events[run.id] = event("run", run_out(run, with_result=False))
        # Read after the states, so every epoch a state counts is here: no stream sees a
        # run finished and ends before that run's last epoch.
        behind = {
            run_id: plan.floors.get(run_id, 0)
            for run_id, state in states.items()
            if state.epochs_done > plan.floors.get(run_id, 0)
        }
        rows = metric_rows(session, list(behind), behind) if behind else {}
    epochs = {
        run_id: [
            (row["epoch"], _epoch_events(row, run_id, plan, states[run_id])) for row in run_rows
        ]
        for run_id, run_rows in rows.items()
    }
    return _Read(states, status_events, run_events, epochs)


def _end(sub: Subscription) -> Event:
    # A browser's EventSource reconnects to a stream the server closed, a few seconds later
    # by default; for a finished sweep, once in a while is enough.
    retry = SWEEP_END_RETRY_MS if sub.kind == "sweep" else None
    return event("end", {f"{sub.kind}_id": sub.key}, retry)


class EventHub:
    """Started once per web process (the app's lifespan); streams subscribe with follow_*."""

    def __init__(self, poll_seconds: float, queue_batches: int = QUEUE_BATCHES):
        self.poll_seconds = poll_seconds
        self.queue_batches = queue_batches
        self.ticks = 0  # completed polls, for tests and benchmarks
        self._subs: set[Subscription] = set()
        self._known: dict[int, _State] = {}
        self._wanted = asyncio.Event()  # set while anyone subscribes
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def run_forever(self) -> None:
        while True:
            await self._wanted.wait()
            try:
                await self.tick()
            except Exception:
                log.exception("event poll failed; trying again")
            await anyio.sleep(self.poll_seconds)

    def close(self) -> None:
        """Ends every open stream (shutdown)."""
        self._closed = True
        for sub in list(self._subs):
            self._drop(sub)

    def follow_run(self, run_id: int, after_epoch: int) -> AsyncIterator[Event]:
        """`epoch` per epoch after after_epoch, `status` per change, `end` once final."""
        return self._follow("run", run_id, {run_id: after_epoch})

    def follow_sweep(self, sweep_id: int, epochs_done: dict[int, int]) -> AsyncIterator[Event]:
        """`epoch` (with run_id) per new epoch, `run` per change of a run, `end` once every
        run is final; `epochs_done` holds each run's epochs stored when the client came."""
        return self._follow("sweep", sweep_id, dict(epochs_done))

    async def _follow(self, kind, key: int, last_epoch: dict[int, int]) -> AsyncIterator[Event]:
        send, receive = anyio.create_memory_object_stream[list[Event]](self.queue_batches)
        sub = Subscription(kind, key, last_epoch, send, receive)
        if self._closed:
            return
        self._subs.add(sub)
        self._wanted.set()
        try:
            async with receive:
                async for batch in receive:
                    yield b"".join(batch)
        finally:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.send.close()  # the stream ends once it has read what is queued
        self._subs.discard(sub)
        if not self._subs:
            self._wanted.clear()

    async def tick(self) -> None:
        """One poll: read for every subscriber at once, then hand each its events."""
        subs = list(self._subs)
        if not subs:
            return
        read = await anyio.to_thread.run_sync(_read, self._plan(subs))
        self._deliver(subs, read)
        self.ticks += 1

    def _plan(self, subs: list[Subscription]) -> _Plan:
        floors: dict[int, int] = {}
        for sub in subs:
            for run_id, epoch in sub.last_epoch.items():
                floors[run_id] = min(epoch, floors.get(run_id, epoch))
        runs = [s for s in subs if s.kind == "run"]
        sweeps = [s for s in subs if s.kind == "sweep"]
        return _Plan(
            run_ids=frozenset(s.key for s in runs),
            sweep_ids=frozenset(s.key for s in sweeps),
            fresh_runs=frozenset(s.key for s in runs if s.fresh),
            fresh_sweeps=frozenset(s.key for s in sweeps if s.fresh),
            known=dict(self._known),
            floors=floors,
        )

    def _deliver(self, subs: list[Subscription], read: _Read) -> None:
        loaded = read.status_events.keys() | read.run_events.keys()
        # Forget the runs no one follows any more; remember what this tick loaded.
        self._known = {k: v for k, v in self._known.items() if k in read.states}
        self._known.update({run_id: read.states[run_id] for run_id in loaded})
        in_sweep: dict[int | None, list[int]] = defaultdict(list)
        for run_id, state in read.states.items():
            in_sweep[state.sweep_id].append(run_id)

        for sub in subs:
            if sub not in self._subs:
                continue  # left while the tick read
            if sub.kind == "run":
                run_ids = [sub.key] if sub.key in read.states else []
                changes = read.status_events
            else:
                run_ids = sorted(in_sweep.get(sub.key, []))
                changes = read.run_events
            batch: list[Event] = []
            # Epochs first: a run's last epoch arrives before its "succeeded".
            for run_id in run_ids:
                last = sub.last_epoch.get(run_id, 0)
                for number, events in read.epochs.get(run_id, ()):
                    if number > last:
                        batch.append(events[sub.kind])
                        last = number
                sub.last_epoch[run_id] = last
            for run_id in run_ids:
                state = read.states[run_id]
                if run_id in changes and sub.seen.get(run_id) != state:
                    batch.append(changes[run_id])
                    sub.seen[run_id] = state
            sub.fresh = False
            # Final, not "final and no cancel pending": a finished run is done whatever
            # flags it kept. A deleted run, or a sweep left with no runs, ends too.
            done = all(read.states[run_id].status in FINAL for run_id in run_ids)
            if done:
                batch.append(_end(sub))
            if batch:
                try:
                    sub.send.send_nowait(batch)
                except (anyio.WouldBlock, anyio.BrokenResourceError):
                    log.warning("dropped a %s event stream that stopped reading", sub.kind)
                    done = True
            if done:
                self._drop(sub)
