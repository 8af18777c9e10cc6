"""One SQLite file under write and read load, as `resnet-lab serve` runs it.

What: starts `resnet-lab serve --workers 0` on a temporary home (SQLite database, embedded
broker), creates the runs over the API, then for --seconds (default 60):
  - 4 writer processes record epochs as fast as they can through
    `core.lifecycle.record_epoch` (the worker's own code path: one session and commit per
    epoch), each into its own runs, one run at a time, 200 epochs a run, as a worker would;
    they catch and count `sqlite3.OperationalError`, "database is locked" apart;
  - 50 concurrent readers (one asyncio + httpx process): 20 poll the runs list (a page of 50
    sorted by best accuracy), 20 fetch one run's metrics, each pausing --think seconds
    (default 0.5, jittered +-50%) between requests, like a dashboard refreshing ten times
    faster than the pages do (they poll every 5 s); 10 hold server-sent event streams of
    `/api/runs/{id}/events` on a run being written, reading its events, and reconnect every
    few seconds. Readers count 5xx and transport errors. `--think 0` turns the pollers into
    a closed loop that measures the server's saturation instead: their latency is then their
    number divided by the server's throughput.
Prints p50/p95 read latency (runs list + metrics; target p95 <= 300 ms) against an idle
baseline measured first in the same run, the SSE streams' time to first event and events
read, writes/s, the "database is locked" count (writers, reader 5xx, server log; target 0),
and checks afterwards that every epoch a writer committed is readable over the API (per run:
the writer's count equals the metric rows served and the run's epochs_done).
Also times submitting the report's 108-run grid (`POST /api/sweeps {"preset": "report",
"seeds": [0, 1, 2]}`; target under 1 s) against a single-run POST, both on the idle server.
Exits 1 when a target is missed.

On: whatever machine runs it; the figures in the hardening report came from the 2-core
development container, with the server, the 4 writers and the readers sharing those cores
(the readers' own client time is part of the latency they measure).

Rerun: .venv/bin/python bench/load.py [--seconds 60] [--writers 4] [--readers 50] [--think 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from serving import ROOT, fake_epoch, free_port, start_server, wait_healthy  # noqa: E402

sys.path.insert(0, str(ROOT))

EPOCHS_PER_RUN = 200
READ_P95_TARGET_MS = 300.0
GRID_TARGET_S = 1.0
RUN_CONFIG = {"dataset": "digits", "width": 8, "epochs": EPOCHS_PER_RUN, "augmentation": "none"}


# ------------------------------------------------------------------ writer process


def writer_main(args: argparse.Namespace) -> int:
    """One writer: records epochs into its runs until the deadline; prints what it wrote."""
    os.environ["RESNET_LAB_HOME"] = args.home
    from sqlalchemy.exc import OperationalError

    from core import lifecycle
    from core.config import get_settings
    from core.db import new_session
    from trainer.results import EpochMetrics

    get_settings.cache_clear()
    run_ids = [int(i) for i in args.run_ids.split(",")]
    # Like a worker, the writer owns its runs: every epoch write is an owner-checked upsert.
    with new_session() as session:
        owners = {
            run_id: lifecycle.claim(session, run_id, f"bench-writer-{args.writer}", 3600)
            for run_id in run_ids
        }
    current_file = Path(args.home) / f"writer-{args.writer}.current"
    written = {run_id: 0 for run_id in run_ids}
    locked = other = 0
    errors: list[str] = []
    latencies = []
    index = 0
    current_file.write_text(f"0 {run_ids[0]}")
    while time.time() < args.start_at:
        time.sleep(0.01)
    deadline = args.start_at + args.seconds
    while time.time() < deadline:
        run_id = run_ids[index]
        epoch = written[run_id] + 1
        if epoch > EPOCHS_PER_RUN:
            index += 1
            if index == len(run_ids):
                break  # out of runs: reported as exhausted
            current_file.write_text(f"{index} {run_ids[index]}")
            continue
        acc = min(0.1 + epoch / EPOCHS_PER_RUN * 0.85, 0.99)
        metrics = EpochMetrics(**fake_epoch(epoch, acc, seconds=1.0, ips=1000.0))
        t0 = time.perf_counter()
        try:
            with new_session() as session:
                lifecycle.record_epoch(session, run_id, metrics, owners[run_id])
        except OperationalError as exc:
            if "database is locked" in str(exc):
                locked += 1
            else:
                other += 1
                errors.append(str(exc)[:200])
            continue
        latencies.append(time.perf_counter() - t0)
        written[run_id] = epoch
    latencies.sort()
    print(
        json.dumps(
            {
                "writer": args.writer,
                "written": written,
                "locked": locked,
                "other_errors": other,
                "errors": errors[:5],
                "exhausted": index == len(run_ids),
                "write_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
                "write_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))]
                if latencies
                else None,
            }
        ),
        flush=True,
    )
    return 0


# ------------------------------------------------------------------ readers


class Readers:
    def __init__(self, base: str, home: Path, runs: list[list[int]], deadline: float, think: float):
        self.base = base
        self.think = think
        self.home = home
        self.runs = runs
        self.deadline = deadline
        self.latencies: dict[str, list[float]] = {"list": [], "metrics": []}
        self.first_event: list[float] = []
        self.events = 0
        self.streams = 0
        self.server_errors = 0
        self.transport_errors: list[str] = []

    def _current(self, writer: int) -> tuple[int, int]:
        try:
            index, run_id = (self.home / f"writer-{writer}.current").read_text().split()
            return int(index), int(run_id)
        except (OSError, ValueError):
            return 0, self.runs[writer][0]

    def _run_with_data(self) -> int:
        writer = random.randrange(len(self.runs))
        index, _ = self._current(writer)
        return self.runs[writer][random.randint(0, index)]

    async def _get(self, client: httpx.AsyncClient, kind: str, url: str) -> None:
        t0 = time.perf_counter()
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            self.transport_errors.append(f"{kind}: {exc!r}"[:200])
            return
        self.latencies[kind].append(time.perf_counter() - t0)
        if response.status_code >= 500:
            self.server_errors += 1

    async def poller(self, client: httpx.AsyncClient, kind: str) -> None:
        while time.time() < self.deadline:
            if kind == "list":
                await self._get(client, kind, "/api/runs?sort=-best_test_acc&limit=50")
            else:
                await self._get(client, kind, f"/api/runs/{self._run_with_data()}/metrics")
            if self.think:
                await asyncio.sleep(self.think * random.uniform(0.5, 1.5))

    async def streamer(self, client: httpx.AsyncClient) -> None:
        while time.time() < self.deadline:
            _, run_id = self._current(random.randrange(len(self.runs)))
            t0 = time.perf_counter()
            seen_first = False
            try:
                async with client.stream("GET", f"/api/runs/{run_id}/events") as response:
                    if response.status_code >= 500:
                        self.server_errors += 1
                        continue
                    self.streams += 1
                    stop = min(time.time() + random.uniform(3, 6), self.deadline)
                    lines = response.aiter_lines()
                    while time.time() < stop:
                        try:
                            line = await asyncio.wait_for(anext(lines), stop - time.time())
                        except (TimeoutError, StopAsyncIteration):
                            break
                        if line.startswith("event:"):
                            if not seen_first:
                                self.first_event.append(time.perf_counter() - t0)
                                seen_first = True
                            self.events += 1
            except httpx.HTTPError as exc:
                self.transport_errors.append(f"sse: {exc!r}"[:200])

    async def run(self, count: int) -> None:
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        async with httpx.AsyncClient(base_url=self.base, timeout=30, limits=limits) as client:
            tasks = []
            for i in range(count):
                slot = i % 5
                if slot in (0, 1):
                    tasks.append(self.poller(client, "list"))
                elif slot in (2, 3):
                    tasks.append(self.poller(client, "metrics"))
                else:
                    tasks.append(self.streamer(client))
            await asyncio.gather(*tasks)


# ------------------------------------------------------------------ helpers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def timed_posts(client: httpx.Client, path: str, body: dict, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.post(path, json=body)
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
    return times


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--think", type=float, default=0.5, help="pollers' pause, seconds")
    parser.add_argument("--runs-per-writer", type=int, default=0, help="default: enough")
    # Internal: the writer processes run this same file.
    parser.add_argument("--writer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--run-ids", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer is not None:
        return writer_main(args)

    # Enough runs that no writer runs out: 200 epochs a run, up to ~1,000 epochs/s a writer.
    runs_per_writer = args.runs_per_writer or max(10, int(args.seconds * 5))
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        server_log = Path(tmp) / "serve.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # The bench submits many runs from one client: lift the per-client submission limit.
        proc = start_server(home, port, server_log, SUBMIT_RATE_PER_MINUTE="1000000")
        writers: list[subprocess.Popen] = []
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                wait_healthy(client, proc)

                # The 108-run grid against one single-run POST, on the idle server.
                single = timed_posts(client, "/api/runs", RUN_CONFIG, 5)
                grid_body = {"preset": "report", "seeds": [0, 1, 2]}
                grid = timed_posts(client, "/api/sweeps", grid_body, 5)
                assert len(client.get("/api/sweeps").json()["items"][0]["run_ids"]) == 108

                # Each writer's runs, created over the API (sweeps of up to 100 runs).
                runs: list[list[int]] = []
                for w in range(args.writers):
                    ids: list[int] = []
                    while len(ids) < runs_per_writer:
                        n = min(100, runs_per_writer - len(ids))  # at most 100 seeds
                        body = {
                            "name": f"writer {w}",
                            "base": RUN_CONFIG,
                            "grid": {"activation": ["relu"]},
                            "seeds": list(range(len(ids), len(ids) + n)),
                        }
                        response = client.post("/api/sweeps", json=body)
                        response.raise_for_status()
                        ids += response.json()["run_ids"]
                    runs.append(ids)

                # Idle read baseline: the same two reads, one at a time.
                idle: dict[str, list[float]] = {"list": [], "metrics": []}
                for _ in range(30):
                    for kind, url in (
                        ("list", "/api/runs?sort=-best_test_acc&limit=50"),
                        ("metrics", f"/api/runs/{runs[0][0]}/metrics"),
                    ):
                        t0 = time.perf_counter()
                        client.get(url).raise_for_status()
                        idle[kind].append(time.perf_counter() - t0)

            # The load: writers and readers start together.
            start_at = time.time() + 3.0  # time for the writers to import
            for w, ids in enumerate(runs):
                writers.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--writer", str(w), "--home", str(home)]
                        + ["--run-ids", ",".join(map(str, ids)), "--start-at", str(start_at)]
                        + ["--seconds", str(args.seconds)],
                        cwd=ROOT,
                        stdout=subprocess.PIPE,
                        env={**os.environ, "RESNET_LAB_HOME": str(home)},
                    )
                )
            while time.time() < start_at:
                time.sleep(0.01)
            readers = Readers(base, home, runs, start_at + args.seconds, args.think)
            asyncio.run(readers.run(args.readers))
            reports = []
            for proc_w in writers:
                out, _ = proc_w.communicate(timeout=args.seconds + 120)
                reports.append(json.loads(out.decode().strip().splitlines()[-1]))

            # Every committed epoch is readable: per run, the writer's count is what is served.
            missing = []
            with httpx.Client(base_url=base, timeout=60) as client:
                for report in reports:
                    for run_id, count in report["written"].items():
                        if count == 0:
                            continue
                        epochs = client.get(f"/api/runs/{run_id}/metrics").json()["epochs"]
                        done = client.get(f"/api/runs/{run_id}").json()["epochs_done"]
                        if [e["epoch"] for e in epochs] != list(range(1, count + 1)) or (
                            done != count
                        ):
                            missing.append((run_id, count, len(epochs), done))
        finally:
            for proc_w in writers:
                if proc_w.poll() is None:
                    proc_w.kill()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        server_locked = server_log.read_text(errors="replace").count("database is locked")

    written = sum(sum(r["written"].values()) for r in reports)
    locked = sum(r["locked"] for r in reports)
    other = sum(r["other_errors"] for r in reports)
    reads = readers.latencies["list"] + readers.latencies["metrics"]
    idle_reads = idle["list"] + idle["metrics"]

    print(
        f"\nload: {args.writers} writer processes, {args.readers} readers "
        f"(pollers pause {args.think:g} s), {args.seconds:.0f} s"
    )
    print(f"\n{'reads':34} {'count':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in (
        ("idle baseline, list + metrics", idle_reads),
        ("under load: runs list", readers.latencies["list"]),
        ("under load: one run's metrics", readers.latencies["metrics"]),
        ("under load: list + metrics", reads),
        ("SSE: time to first event", readers.first_event),
    ):
        print(f"{name:34} {len(values):7d} {pct(values, 0.5):8.1f} {pct(values, 0.95):8.1f}")
    print(f"SSE streams opened {readers.streams}, events read {readers.events}")
    print(f"\nwrites: {written} epochs committed, {written / args.seconds:.0f}/s")
    for r in reports:
        print(
            f"  writer {r['writer']}: {sum(r['written'].values())} epochs, "
            f"p50 {r['write_p50_ms']:.1f} ms, p95 {r['write_p95_ms']:.1f} ms per epoch"
            + (" (ran out of runs)" if r["exhausted"] else "")
        )
    print(
        f"\n'database is locked': writers {locked}, reader 5xx {readers.server_errors}, "
        f"server log {server_locked} (target 0)"
    )
    print(f"other writer errors {other}, reader transport errors {len(readers.transport_errors)}")
    for message in [e for r in reports for e in r["errors"]][:5] + readers.transport_errors[:5]:
        print(f"  {message}")
    print(
        f"every committed epoch readable afterwards: {'yes' if not missing else 'NO'}"
        + (f" (mismatches run, written, served, epochs_done: {missing[:5]})" if missing else "")
    )
    single_ms, grid_ms = 1000 * statistics.median(single), 1000 * statistics.median(grid)
    print(
        f"\nsubmit, median of 5: one run {single_ms:.0f} ms (baseline); 108-run grid "
        f"{grid_ms:.0f} ms (max {1000 * max(grid):.0f} ms, {grid_ms / single_ms:.1f}x baseline; "
        f"target < {GRID_TARGET_S * 1000:.0f} ms)"
    )

    ok &= locked == 0 and readers.server_errors == 0 and server_locked == 0 and other == 0
    ok &= not readers.transport_errors and not missing
    ok &= pct(reads, 0.95) <= READ_P95_TARGET_MS
    ok &= statistics.median(grid) < GRID_TARGET_S
    ok &= not any(r["exhausted"] for r in reports)
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
