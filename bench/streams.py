"""Many open event streams on a live sweep, against the same server with none open.

What: starts `resnet-lab serve --workers 0` on a temporary home (SQLite database, embedded
broker), creates 200 background runs and a 12-run sweep, and starts a writer process that
claims --running runs of the sweep as a worker would (`core.lifecycle.claim`) and records
--epochs-per-second epochs into them (`core.lifecycle.record_epoch`, the worker's own code
path) for the whole benchmark. Then:
  1. idle: --requests sequential `GET /api/runs` (a page of 50), p50/p95;
  2. a second process opens --streams server-sent event streams of
     `/api/sweeps/{id}/events` (raw asyncio sockets to 127.0.0.1, counting events) and
     reads them;
     once every stream has had its first event, the same --requests reads again.
During each phase it samples the server's `db_connections_in_use` (`/healthz`: the
connections the web process has checked out of its pool, not counting the health check's
own) and the SQLite file handles the server process holds (/proc/PID/fd: connections the
pool keeps open, in use or idle), and the server's CPU time (/proc/PID/stat).
Prints both latencies and their ratio (target: p95 with streams <= 2x idle), the connections
in use (target: at most 2 whatever the number of streams: the measured list request's and
the poller's, while it reads), events read per stream and the server's CPU use. Exits 1 when
a target is missed.

On: whatever machine runs it; the server, the writer, the stream reader and the request
loop share its cores, so the figures include their competition.

Rerun: .venv/bin/python bench/streams.py [--streams 200] [--requests 1000]
       [--epochs-per-second 8] [--running 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from serving import ROOT, fake_epoch, free_port, start_server, wait_healthy

sys.path.insert(0, str(ROOT))

RATIO_TARGET = 2.0
SWEEP = {
    "name": "live",
    "base": {"dataset": "digits", "width": 8, "epochs": 1000, "augmentation": "none"},
    "grid": {"activation": ["relu", "leaky_relu", "tanh", "sigmoid"]},
    "seeds": [0, 1, 2],
}


# ------------------------------------------------------------------ writer process


def writer_main(args: argparse.Namespace) -> int:
    """Records epochs into its runs at a steady pace until stdin closes."""
    os.environ["RESNET_LAB_HOME"] = args.home
    from core import lifecycle
    from core.config import get_settings
    from core.db import new_session
    from trainer.results import EpochMetrics

    get_settings.cache_clear()
    run_ids = [int(i) for i in args.run_ids.split(",")]
    with new_session() as session:
        owners = {r: lifecycle.claim(session, r, "bench-writer", 3600) for r in run_ids}
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    epoch, written, every = 0, 0, 1.0 / args.epochs_per_second
    next_at = time.monotonic()
    while not stop.is_set():
        epoch += 1
        for run_id in run_ids:
            metrics = EpochMetrics(**fake_epoch(epoch, min(0.1 + epoch / 1000, 0.99), 1.0))
            with new_session() as session:
                written += lifecycle.record_epoch(session, run_id, metrics, owners[run_id])
            next_at += every
            stop.wait(max(0.0, next_at - time.monotonic()))
    print(json.dumps({"written": written}), flush=True)
    return 0


# ------------------------------------------------------------------ stream reader process


async def read_streams(port: int, url: str, count: int) -> dict:
    """Opens `count` streams, says "ready" once each had an event, reads until stdin closes.

    Raw sockets that only count events: an HTTP client parsing 1,500 events a second would
    take the very CPU the server's latency is measured against."""
    counts = [0] * count
    errors: list[str] = []
    first = [asyncio.Event() for _ in range(count)]
    request = f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"

    async def one(i: int) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
                return
            tail = b""
            while chunk := await reader.read(65536):
                text = tail + chunk
                counts[i] += text.count(b"event: ")
                tail = text[-6:]  # a marker cut in two is counted in the next read
                first[i].set()
            errors.append("the server ended the stream")
        except OSError as exc:
            errors.append(repr(exc)[:200])
        finally:
            first[i].set()  # a failed stream must not hold up "ready"
            if writer is not None:
                writer.close()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 120)
    print(json.dumps({"ready": count - len(errors)}), flush=True)
    at_ready = sum(counts)
    started = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    seconds = time.monotonic() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "counts": counts,
        "after_ready": sum(counts) - at_ready,
        "seconds": seconds,
        "errors": errors[:5],
        "failed": len(errors),
        "cpu_seconds": time.process_time(),
    }


def streams_main(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(read_streams(args.port, args.url, args.streams))), flush=True)
    return 0


# ------------------------------------------------------------------ the server's side


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def sqlite_handles(pid: int, database: Path) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == str(database)
        except OSError:
            pass
    return count


class Sampler:
    """Samples /healthz's db_connections_in_use and the SQLite handles every 0.2 s."""

    def __init__(self, base: str, pid: int, database: Path):
        self.base, self.pid, self.database = base, pid, database
        self.in_use: list[int] = []
        self.handles: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.wait(0.2):
                self.in_use.append(client.get("/healthz").json()["db_connections_in_use"])
                self.handles.append(sqlite_handles(self.pid, self.database))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)


def timed_reads(client: httpx.Client, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get("/api/runs")
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[int(q * (len(ordered) - 1))]


def phase(name, client, proc, sampler_args, requests) -> dict:
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    with Sampler(*sampler_args) as sampler:
        times = timed_reads(client, requests)
    cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
    return {"name": name, "times": times, "cpu": cpu, "sampler": sampler}


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    # 8 epochs/s into a sweep that 200 streams follow: 1,600 epoch events/s on the wire.
    parser.add_argument("--epochs-per-second", type=float, default=8.0)
    parser.add_argument("--running", type=int, default=4, help="sweep runs being written")
    # Internal: the writer and stream reader processes run this same file.
    parser.add_argument("--role", choices=["writer", "streams"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--run-ids", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "writer":
        return writer_main(args)
    if args.role == "streams":
        return streams_main(args)

    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(home, port, Path(tmp) / "serve.log", SUBMIT_RATE_PER_MINUTE="100000")
        helpers: list[subprocess.Popen] = []
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                wait_healthy(client, proc)
                background = {**SWEEP, "name": "background", "seeds": list(range(50))}
                client.post("/api/sweeps", json=background).raise_for_status()  # 200 runs
                sweep = client.post("/api/sweeps", json=SWEEP).json()
                writer = subprocess.Popen(
                    [*me, "--role", "writer", "--home", str(home)]
                    + ["--run-ids", ",".join(map(str, sweep["run_ids"][: args.running]))]
                    + ["--epochs-per-second", str(args.epochs_per_second)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                helpers.append(writer)
                deadline = time.monotonic() + 60
                while client.get(f"/api/runs/{sweep['run_ids'][0]}").json()["epochs_done"] < 2:
                    if time.monotonic() > deadline or writer.poll() is not None:
                        raise SystemExit("the writer recorded no epochs")
                    time.sleep(0.1)
                timed_reads(client, 20)  # warm up

                sampling = (base, proc.pid, home / "resnet-lab.db")
                idle = phase("idle (no stream open)", client, proc, sampling, args.requests)

                reader = subprocess.Popen(
                    [*me, "--role", "streams", "--port", str(port), "--streams", str(args.streams)]
                    + ["--url", f"/api/sweeps/{sweep['id']}/events"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                helpers.append(reader)
                ready = json.loads(reader.stdout.readline() or '{"ready": 0}')["ready"]
                busy = phase(f"{ready} streams open", client, proc, sampling, args.requests)
                reader.stdin.close()
                streamed = json.loads(reader.stdout.readline())
                writer.stdin.close()
                written = json.loads(writer.stdout.readline())["written"]
        finally:
            for helper in helpers:
                if helper.poll() is None:
                    helper.kill()
                helper.wait()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    print(
        f"\nstreams: {args.streams} on a 12-run sweep with {args.running} runs being written, "
        f"{args.epochs_per_second:g} epochs/s ({written} epochs written); 200 other runs"
    )
    print(
        f"\n{'GET /api/runs':24} {'count':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'conns in use':>13} {'sqlite fds':>11} {'server CPU':>11}"
    )
    for p in (idle, busy):
        s = p["sampler"]
        print(
            f"{p['name']:24} {len(p['times']):6d} {pct(p['times'], 0.5):7.1f} "
            f"{pct(p['times'], 0.95):7.1f} {min(s.in_use)}..{max(s.in_use):<10} "
            f"{min(s.handles)}..{max(s.handles):<8} {100 * p['cpu']:10.0f}%"
        )
    ratio = pct(busy["times"], 0.95) / pct(idle["times"], 0.95)
    print(f"p95 ratio, streams / idle: {ratio:.2f}x (target <= {RATIO_TARGET:g}x)")
    counts = streamed["counts"]
    print(
        f"events per stream: min {min(counts)}, median {statistics.median(counts):.0f}, "
        f"max {max(counts)}; {streamed['after_ready'] / streamed['seconds']:.0f} events/s "
        f"to all streams while measured; streams failed {streamed['failed']}; "
        f"the stream reader's own CPU {streamed['cpu_seconds']:.1f} s"
    )
    for error in streamed["errors"]:
        print(f"  {error}")
    in_use = busy["sampler"].in_use
    ok = ratio <= RATIO_TARGET and max(in_use) <= 2 and streamed["failed"] == 0
    ok &= ready == args.streams and min(counts) > 0
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
