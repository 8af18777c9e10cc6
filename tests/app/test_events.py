"""Server-sent event streams over a real SQLite file: one shared poller, no held connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from sqlalchemy import event, update

from app.hub import EventHub
from core import lifecycle, sweeps
from core.db import Run, RunStatus, get_engine, new_session
from tests.conftest import TINY, epoch_row, free_port, record_epochs, wait_for
from trainer.config import TrainConfig

pytestmark = pytest.mark.timeout(120)  # a stream that never ends fails here, not at 300 s


def make_sweep(activations=("relu", "tanh", "sigmoid")) -> tuple[int, list[int]]:
    configs = [TrainConfig(**{**TINY, "activation": a}) for a in activations]
    with new_session() as session:
        sweep, runs = sweeps.create_sweep(
            session, name="t", preset=None, base=TINY, grid={}, seeds=[0], configs=configs
        )
        return sweep.id, [r.id for r in runs]


def set_status(run_id: int, status: RunStatus) -> None:
    """A status written by hand, without bumping updated_at: streams must still see it."""
    with new_session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(status=status))
        session.commit()


def parse(text: str) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name:
            events.append((name, json.loads(line.split(":", 1)[1])))
    return events


def read_stream(client, url: str) -> list[tuple[str, dict]]:
    """The whole stream: returns only once the server ends it."""
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse(response.read().decode())


@pytest.fixture
def service(make_service):
    # The reaper would otherwise use database connections while the tests count them.
    return make_service(None, REAPER_INTERVAL="3600", EVENTS_POLL_SECONDS="0.05")


def hub_of(client) -> EventHub:
    return client.app.state.event_hub


def after_first_delivery(hub: EventHub, subscribers: int) -> None:
    """Waits until `subscribers` streams are open and have had a tick's events: the tick
    under way when the last one subscribed may have begun before it, so two ticks."""
    wait_for(lambda: hub.subscribers >= subscribers, 30, "the streams to subscribe", every=0.01)
    ticks = hub.ticks
    wait_for(lambda: hub.ticks >= ticks + 2, 30, "two polls", every=0.01)


# ------------------------------------------------------------------ through the API


def test_missing_run_or_sweep_is_a_plain_404_before_any_stream(service):
    for url in ("/api/runs/424242/events", "/api/sweeps/424242/events"):
        response = service.client.get(url)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert "not found" in response.json()["detail"]
    assert hub_of(service.client).subscribers == 0


def test_run_stream_sends_stored_epochs_after_after_epoch_then_status_then_end(service):
    run_id = service.client.post("/api/runs", json=TINY).json()["id"]
    owner = record_epochs(run_id, epoch_row(1), epoch_row(2), epoch_row(3))
    with new_session() as session:
        lifecycle.fail(session, run_id, "boom", owner)

    events = read_stream(service.client, f"/api/runs/{run_id}/events?after_epoch=1")
    assert [name for name, _ in events] == ["epoch", "epoch", "status", "end"]
    assert [data["epoch"] for name, data in events if name == "epoch"] == [2, 3]
    assert events[2][1]["status"] == "failed" and events[2][1]["error"] == "boom"
    assert events[3][1] == {"run_id": run_id}


def test_stream_of_a_run_cancelled_while_running_ends_though_cancel_requested_stays_set(
    service,
):
    run_id = service.client.post("/api/runs", json=TINY).json()["id"]
    record_epochs(run_id, epoch_row(1))
    assert service.client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    hub = hub_of(service.client)

    def worker_stops():
        after_first_delivery(hub, 1)
        # An older worker marked the run cancelled and left cancel_requested set.
        set_status(run_id, RunStatus.cancelled)

    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(worker_stops)
        events = read_stream(service.client, f"/api/runs/{run_id}/events")
        stopping.result()
    statuses = [data for name, data in events if name == "status"]
    assert statuses[0]["status"] == "running" and statuses[0]["cancel_requested"]
    assert statuses[-1]["status"] == "cancelled" and statuses[-1]["cancel_requested"]
    assert events[-1] == ("end", {"run_id": run_id})
    assert [d["epoch"] for n, d in events if n == "epoch"] == [1]


def test_sweep_stream_ends_once_every_run_is_final_and_follows_a_lost_run_until_then(service):
    sweep_id, (lost_id, done_id) = make_sweep(("relu", "tanh"))
    record_epochs(lost_id, epoch_row(1))
    set_status(lost_id, RunStatus.lost)
    assert service.client.post(f"/api/runs/{done_id}/cancel").json()["status"] == "cancelled"
    hub = hub_of(service.client)

    def resumed_then_failed():
        after_first_delivery(hub, 1)
        with new_session() as session:
            assert lifecycle.requeue(session, lost_id)
        owner = record_epochs(lost_id, epoch_row(2), worker="second-worker")
        with new_session() as session:
            assert lifecycle.fail(session, lost_id, "out of memory", owner)

    with ThreadPoolExecutor(1) as pool:
        resuming = pool.submit(resumed_then_failed)
        events = read_stream(service.client, f"/api/sweeps/{sweep_id}/events")
        resuming.result()
    lost_states = [d["status"] for n, d in events if n == "run" and d["id"] == lost_id]
    assert lost_states[0] == "lost" and lost_states[-1] == "failed"
    # Epoch 1 was stored before the client came (it reads those from /api/metrics).
    assert [(d["run_id"], d["epoch"]) for n, d in events if n == "epoch"] == [(lost_id, 2)]
    assert events[-1] == ("end", {"sweep_id": sweep_id})
    assert [n for n, _ in events].count("end") == 1


# ------------------------------------------------------------------ a real server


@contextlib.contextmanager
def serving(app):
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start", every=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def next_event(lines, name: str) -> dict:
    current = None
    for line in lines:
        if line.startswith("event:"):
            current = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and current == name:
            return json.loads(line.split(":", 1)[1])
    raise AssertionError(f"stream ended before an {name!r} event")


def test_forty_open_streams_hold_no_database_connection_and_lists_still_answer(service):
    """More streams than the pool has connections (20 + 10): each used to hold one."""
    from app.main import create_app

    app = create_app()
    sweep_id, run_ids = make_sweep()
    record_epochs(run_ids[0], epoch_row(1))
    pool = get_engine().pool
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    with (
        serving(app) as base,
        httpx.Client(base_url=base, timeout=20, limits=limits) as client,
        contextlib.ExitStack() as streams,
    ):
        urls = [f"/api/sweeps/{sweep_id}/events"] * 30 + [f"/api/runs/{run_ids[0]}/events"] * 10
        lines = []
        for url in urls:
            response = streams.enter_context(client.stream("GET", url))
            assert response.status_code == 200
            lines.append(response.iter_lines())
        for url, stream in zip(urls, lines):
            next_event(stream, "run" if "sweeps" in url else "status")
        hub = app.state.event_hub
        assert hub.subscribers == 40

        # The poller takes one connection for the moment of a tick; the streams none.
        samples = []
        wait_for(lambda: samples.append(pool.checkedout()) or samples[-1] == 0, 10, "0 in use")
        assert max(samples) <= 1, samples
        health = client.get("/healthz").json()
        assert health["db_connections_in_use"] <= 1
        assert client.get("/api/runs").status_code == 200

        with new_session() as session:
            owner = lifecycle.Owner("test-worker", 1)
            assert lifecycle.record_epoch(session, run_ids[0], epoch_row(2), owner)
        for stream in lines:
            assert next_event(stream, "epoch")["epoch"] == 2
        streams.close()
        wait_for(lambda: hub.subscribers == 0, 30, "closed streams to unsubscribe")


# ------------------------------------------------------------------ the hub itself


@pytest.fixture
def database(tmp_path, monkeypatch):
    """A SQLite file and no app: only the hub runs statements."""
    from core import migrate
    from core.config import get_settings

    monkeypatch.setenv("RESNET_LAB_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    migrate.upgrade(get_settings().resolved_database_url)
    yield get_engine()
    get_settings.cache_clear()


class Reader:
    """A stream's client: collects its events; `stalled` ones read one write, then stop."""

    def __init__(self, stream, stalled: bool = False):
        self.events: list[tuple[str, dict]] = []
        self.finished = False
        self.stalled = stalled
        self.task = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream):
        async for chunk in stream:
            self.events += parse(chunk.decode())
            if self.stalled:
                await asyncio.Event().wait()
        self.finished = True


def epochs_of(reader: Reader) -> list[int]:
    return [data["epoch"] for name, data in reader.events if name == "epoch"]


async def until(predicate, what: str) -> None:
    """Lets the event loop run until predicate() holds (a bounded number of turns)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def statements_per_tick(engine, streams_per_kind: int) -> list[int]:
    sweep_id, run_ids = make_sweep()
    owner = record_epochs(run_ids[0], epoch_row(1))
    stored = {run_id: (1 if run_id == run_ids[0] else 0) for run_id in run_ids}
    counts: list[int] = []

    async def scenario():
        hub = EventHub(poll_seconds=1)
        sweeps = [Reader(hub.follow_sweep(sweep_id, stored)) for _ in range(streams_per_kind)]
        runs = [Reader(hub.follow_run(run_ids[0], 0)) for _ in range(streams_per_kind)]
        readers = sweeps + runs
        await until(lambda: hub.subscribers == len(readers), "every stream subscribed")

        async def counted_tick():
            seen = []
            listener = lambda *args: seen.append(1)  # noqa: E731
            event.listen(engine, "before_cursor_execute", listener)
            try:
                await hub.tick()
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            counts.append(len(seen))

        await counted_tick()  # first: every stream's initial state, the run's stored epoch
        with new_session() as session:
            lifecycle.record_epoch(session, run_ids[0], epoch_row(2), owner)
        await counted_tick()  # a new epoch for every stream
        await counted_tick()  # nothing new
        # Every stream got its epochs: a sweep's only the new one, a run's the stored one too.
        for readers, expected in ((sweeps, [2]), (runs, [1, 2])):
            for reader in readers:
                await until(lambda r=reader, n=len(expected): len(epochs_of(r)) == n, "epochs")
                assert epochs_of(reader) == expected
        hub.close()
        await asyncio.gather(*(r.task for r in sweeps + runs))

    asyncio.run(scenario())
    return counts


def test_one_poll_runs_the_same_few_queries_for_one_stream_or_fifty(database):
    one = statements_per_tick(database, 1)
    fifty = statements_per_tick(database, 50)
    assert one == fifty, (one, fifty)
    assert max(one) <= 3 and one[-1] == 1, one  # an idle tick: one narrow read


def test_a_stream_that_stops_reading_is_dropped_and_the_others_carry_on(database):
    _, run_ids = make_sweep(("relu",))
    run_id = run_ids[0]
    owner = record_epochs(run_id, epoch_row(1))

    async def scenario():
        hub = EventHub(poll_seconds=1, queue_batches=2)
        slow = Reader(hub.follow_run(run_id, 0), stalled=True)
        fast = Reader(hub.follow_run(run_id, 0))
        await until(lambda: hub.subscribers == 2, "both subscribed")
        for epoch in range(2, 7):
            await hub.tick()
            with new_session() as session:
                assert lifecycle.record_epoch(session, run_id, epoch_row(epoch), owner)
        await hub.tick()
        await until(lambda: len(epochs_of(fast)) == 6, "six epochs")
        assert hub.subscribers == 1  # the slow one is gone, the fast one still follows
        hub.close()
        await until(lambda: fast.finished, "the fast stream to end on close")
        slow.task.cancel()
        return slow, fast

    slow, fast = asyncio.run(scenario())
    assert epochs_of(fast) == [1, 2, 3, 4, 5, 6]
    assert [name for name, _ in slow.events] == ["epoch", "status"]  # the first tick's
    assert not any(name == "end" for name, _ in fast.events)
