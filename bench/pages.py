"""How fast the dashboard's pages are in a browser, with a full database.

What: fills a temporary SQLite database as bench/api_speed.py does (10,000 finished runs of
200 epochs; 108 of them the report's grid with 3 seeds), starts `resnet-lab serve
--workers 0` on it, and loads in headless Chromium (Debian's, through Playwright)
  - the runs list (/),
  - a run page (one of the grid's runs, 200 epochs),
  - the grid page of the 108-run grid,
  - the compare page of 36 of its runs,
each cold (a fresh browser profile: nothing cached) and warm (the same profile, the page
loaded again after leaving it), several times over. It prints the median of, from the
browser's own Performance API:
  - load: the page's load event (navigation timing's loadEventEnd),
  - first chart: the "first-chart" mark that lib/charts.js sets once the page's first
    chart is drawn; on the runs list, which has no chart, when its first row is shown,
  - bytes transferred (transferSize over the document and every resource: 0 for a cache
    hit, headers only for a 304) and the number of requests.
Targets (development machine, 2 cores): first chart <= 1.0 s warm and <= 1.5 s cold on
every page; the runs list's rows <= 0.3 s warm.

Rerun: .venv/bin/python bench/pages.py [--runs 10000] [--epochs 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api_speed import fill
from serving import free_port, start_server, wait_healthy

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TARGETS_S = {"cold": 1.5, "warm": 1.0}
RUNS_LIST_WARM_S = 0.3

# Before any page script: notes when the runs table shows its first row (the runs list
# draws no chart), as a mark like the charts' own.
ROWS_SHOWN = """
new MutationObserver((_, observer) => {
  if (document.querySelector('#runs-body tr[data-run]')) {
    performance.mark('first-rows');
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""

READY_JS = "(name) => performance.getEntriesByName(name).length > 0"

TIMINGS_JS = """(name) => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const mark = performance.getEntriesByName(name)[0];
  return {
    load: nav.loadEventEnd,
    ready: mark ? mark.startTime : null,
    bytes: nav.transferSize + resources.reduce((n, e) => n + e.transferSize, 0),
    requests: 1 + resources.length,
  };
}"""


def visit(page, url: str, mark: str) -> dict:
    page.goto(url, wait_until="load")
    page.wait_for_function(READY_JS, arg=mark, timeout=60_000)
    return page.evaluate(TIMINGS_JS, mark)


def measure(browser, url: str, mark: str, repeat: int) -> dict[str, list[dict]]:
    """Cold and warm visits of one page, `repeat` fresh profiles each."""
    out: dict[str, list[dict]] = {"cold": [], "warm": []}
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.add_init_script(ROWS_SHOWN)
        page = context.new_page()
        out["cold"].append(visit(page, url, mark))
        page.goto("about:blank")
        out["warm"].append(visit(page, url, mark))
        context.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

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
                wait_healthy(client, proc)
            compare = ",".join(map(str, sweep_ids[:36]))
            pages = [
                ("runs list", "/", "first-rows"),
                ("run page", f"/runs/{sweep_ids[0]}", "first-chart"),
                (f"grid page ({len(sweep_ids)} runs)", f"/sweeps/{sweep_id}", "first-chart"),
                ("compare (36 runs)", f"/compare?run_ids={compare}", "first-chart"),
            ]
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--headless", "--no-sandbox", "--disable-gpu"],
                )
                results = [
                    (name, mark, measure(browser, base + path, mark, args.repeat))
                    for name, path, mark in pages
                ]
                browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    print(
        f"\n{'page':24} {'visit':5} {'load s':>7} {'first chart s':>14} {'kB':>8} "
        f"{'requests':>9} {'target s':>9}"
    )
    ok = True
    for name, mark, by_visit in results:
        for visit_kind, samples in by_visit.items():
            med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            target = TARGETS_S[visit_kind]
            if mark == "first-rows" and visit_kind == "warm":
                target = RUNS_LIST_WARM_S
            ready = med["ready"] / 1000
            within = ready <= target
            ok &= within
            what = f"{ready:9.2f} rows" if mark == "first-rows" else f"{ready:14.2f}"
            print(
                f"{name:24} {visit_kind:5} {med['load'] / 1000:7.2f} {what} "
                f"{med['bytes'] / 1000:8.1f} {med['requests']:9.0f} {target:9.1f}"
                f"{'' if within else '  MISSED'}"
            )
    print(f"\nmedians of {args.repeat} visits each; first chart: the runs list's first rows")
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
