"""API latency with a full database, over HTTP to the app as `resnet-lab serve` runs it.

What: fills a temporary SQLite database with 10,000 finished runs of 200 epochs each
(2,000,000 metric rows; 108 of the runs form the report's sweep with 3 seeds), starts
`resnet-lab serve --workers 0` on it, and prints p50/p95 latency of
  - the runs list (a page of 50 sorted by final accuracy),
  - one run's metrics (200 epochs), as rows and as the columns the run page reads,
  - curves of 36 runs in one call, as columns (what the compare and grid pages read) and
    as rows,
  - the 108-run sweep summary (per-cell mean, std, CI, Welch tests),
against a baseline measured in the same run: the cheapest JSON endpoint (`/api/presets`),
i.e. the HTTP stack's own floor. The endpoints are asked in turn, round after round, so a
busy moment of the machine falls on all of them alike. Also prints how soon /healthz
answered after start, the web process's resident memory, and checks that it never loaded
torch.
Targets (development machine, 2 cores): p95 <= 50 ms each, and <= 3x the floor's p95
(curves of 36 runs: <= 10x); RSS < 200 MB; /healthz < 3 s.

Rerun: .venv/bin/python bench/api_speed.py [--runs 10000] [--epochs 200] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from serving import ROOT, fake_epoch, free_port, start_server, wait_healthy  # noqa: E402

sys.path.insert(0, str(ROOT))

TARGET_MS = 50.0


def fill(home: Path, runs: int, epochs: int) -> tuple[int, list[int]]:
    os.environ["RESNET_LAB_HOME"] = str(home)
    from sqlalchemy import insert

    from app.grid import SweepRequest, expand
    from core import lifecycle, migrate, sweeps
    from core.config import get_settings
    from core.db import Metric, Run, get_engine, new_session

    get_settings.cache_clear()
    migrate.upgrade(get_settings().resolved_database_url)
    engine = get_engine()
    rng = random.Random(0)
    with new_session(engine) as session:
        sweep, sweep_runs = sweeps.create_sweep(
            session,
            name="report",
            preset="report",
            base={},
            grid=SweepRequest(preset="report").resolved_grid(),
            seeds=[0, 1, 2],
            configs=expand(SweepRequest(preset="report", seeds=[0, 1, 2])),
        )
        cells = expand(SweepRequest(preset="report", seeds=[0]))
        others = [
            lifecycle.new_run(cells[i % len(cells)].model_copy(update={"seed": 3 + i}))
            for i in range(runs - len(sweep_runs))
        ]
        session.add_all(others)
        session.commit()
        all_ids = [r.id for r in sweep_runs] + [r.id for r in others]
        for start in range(0, len(all_ids), 500):
            ids = all_ids[start : start + 500]
            rows = []
            finals = {}
            speeds = {}
            for run_id in ids:
                acc = 0.1
                run_rows = []
                for epoch in range(1, epochs + 1):
                    acc = min(acc + rng.random() * 0.01, 0.99)
                    run_rows.append(dict(run_id=run_id, **fake_epoch(epoch, acc)))
                rows.extend(run_rows)
                finals[run_id] = acc
                # what lifecycle.record_epoch keeps on the run: the epochs' mean images/s
                speeds[run_id] = statistics.fmean(r["images_per_second"] for r in run_rows)
            session.execute(insert(Metric), rows)
            for run_id in ids:
                session.execute(
                    Run.__table__.update()
                    .where(Run.id == run_id)
                    .values(
                        status="succeeded",
                        epochs_done=epochs,
                        final_test_acc=finals[run_id],
                        best_test_acc=finals[run_id],
                        best_epoch=epochs,
                        train_seconds=10.0 * epochs,
                        images_per_second=speeds[run_id],
                    )
                )
            session.commit()
    return sweep.id, [r.id for r in sweep_runs]


def measure(client: httpx.Client, urls: list[str], n: int) -> list[tuple[float, float]]:
    """(p50, p95) in ms of each URL, asked in turn n times over (after 5 rounds unmeasured)."""
    times: list[list[float]] = [[] for _ in urls]
    for round_ in range(n + 5):
        for i, url in enumerate(urls):
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            if round_ >= 5:
                times[i].append((time.perf_counter() - t0) * 1000)
    out = []
    for t in times:
        t.sort()
        out.append((statistics.median(t), t[int(0.95 * (len(t) - 1))]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        sweep_id, sweep_ids = fill(home, args.runs, args.epochs)
        print(f"filled {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - t0:.1f}s")

        port = free_port()
        proc = start_server(home, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                health_s = wait_healthy(client, proc)
                curves = ",".join(map(str, sweep_ids[:36]))
                one = f"/api/runs/{sweep_ids[0]}/metrics"
                cases = [  # (name, URL, limit as a multiple of the floor's p95)
                    ("baseline: /api/presets", "/api/presets", 1),
                    ("runs list, 50 by final acc", "/api/runs?sort=-final_test_acc&limit=50", 3),
                    ("one run's metrics, columns", f"{one}?format=columns", 3),
                    ("one run's metrics, rows", one, 3),
                    (
                        "curves of 36 runs, columns",
                        f"/api/metrics?format=columns&run_ids={curves}",
                        10,
                    ),
                    ("curves of 36 runs, rows", f"/api/metrics?run_ids={curves}", 10),
                    ("108-run sweep summary", f"/api/sweeps/{sweep_id}", 3),
                ]
                timed = measure(client, [url for _, url, _ in cases], args.requests)
                results = [(name, p50, p95, x) for (name, _, x), (p50, p95) in zip(cases, timed)]
            process = psutil.Process(proc.pid)
            rss_mb = process.memory_info().rss / 2**20
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            torch_loaded = "libtorch" in maps
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    floor = results[0][2]
    head = f"{'endpoint':32} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline':>13} {'limit':>6}"
    print(f"\n{head} {'p95/target':>11}")
    ok = True
    for name, p50, p95, limit in results:
        within = p95 <= TARGET_MS and p95 <= limit * floor
        mark = "" if within else "  MISSED"
        print(
            f"{name:32} {p50:8.1f} {p95:8.1f} {p95 / floor:13.1f} {limit:5}x "
            f"{p95 / TARGET_MS:11.2f}{mark}"
        )
        ok &= within
    print(f"\n/healthz answered {health_s:.2f}s after start (target < 3 s)")
    print(f"web process RSS {rss_mb:.0f} MB (target < 200 MB); torch loaded: {torch_loaded}")
    ok &= health_s < 3 and rss_mb < 200 and not torch_loaded
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
