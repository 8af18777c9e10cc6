"""A page loaded again transfers no JavaScript: every script comes from the browser's cache
(versioned URLs are immutable) or, at worst, is revalidated with a 304.

Reads the browser's own account of each script through the Performance API's resource
entries: `transferSize` is 0 for a cache hit and only the headers' size for a 304
(`responseStatus`), while a downloaded body shows in both. The first load is checked too, so
that the check cannot pass by seeing nothing.

Run alone: `.venv/bin/pytest tests/browser/test_caching.py -v` (seconds).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# Every script the page asked for, as the browser recorded it.
SCRIPTS_JS = """() => performance.getEntriesByType('resource')
  .filter((e) => new URL(e.name).pathname.endsWith('.js'))
  .map((e) => ({url: e.name, transfer: e.transferSize, body: e.encodedBodySize,
                status: e.responseStatus}))"""

# What the page's HTML names: its entry module, the modules it preloads, classic scripts
# (Plotly is preloaded, then run by lib/charts.js).
NAMED_JS = """() => ({
  modules: [...document.querySelectorAll('script[type=module]')].map((s) => s.src),
  preloads: [...document.querySelectorAll('link[rel=modulepreload]')].map((l) => l.href),
  classic: [...document.querySelectorAll('link[rel=preload][as=script]')].map((l) => l.href),
})"""

PAGES = [
    ("/", "runs list"),
    ("/runs/1", "run page"),
    ("/sweeps/1", "grid page"),
    ("/compare?run_ids=1,2", "compare page"),
]


def load(page, url: str) -> tuple[list[dict], dict]:
    page.goto(url, wait_until="load")  # the load event waits for every script, modules too
    return page.evaluate(SCRIPTS_JS), page.evaluate(NAMED_JS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("path", "what"), PAGES, ids=[w for _, w in PAGES])
def test_a_second_load_transfers_no_javascript_body(server, page, watch, path, what):
    first, named = load(page, server.url + path)
    assert len(named["modules"]) == 1, named
    assert named["preloads"], f"the {what} preloads no modules"
    assert all("/static/v/" in u for u in named["modules"] + named["preloads"]), named
    wanted = set(named["modules"] + named["preloads"] + named["classic"])
    seen = {e["url"] for e in first}
    assert wanted <= seen, f"scripts the {what} names but never fetched: {wanted - seen}"
    # the first visit of a fresh browser context downloads them: bodies in transfer sizes
    fetched = [e for e in first if e["url"] in named["modules"]]
    assert fetched and all(e["transfer"] > e["body"] > 0 for e in fetched), fetched

    page.goto("about:blank")
    again, named_again = load(page, server.url + path)
    assert named_again == named, "the same page names the same versioned scripts"
    downloaded = [
        e for e in again if e["transfer"] > 0 and e["status"] != 304 and e["url"] in wanted
    ]
    assert not downloaded, f"the {what} loaded again downloaded: {downloaded}"
    # and the page ran: its modules executed without an error
    assert not watch.page_errors, watch.page_errors


@pytest.mark.timeout(120)
def test_a_reload_and_other_pages_reuse_the_shared_modules(server, page):
    _, named = load(page, server.url + "/runs/1")
    page.reload(wait_until="load")
    again = page.evaluate(SCRIPTS_JS)
    downloaded = [e for e in again if e["transfer"] > 0 and e["status"] != 304]
    assert not downloaded, f"a reload downloaded: {downloaded}"
    # another page that shares lib/ modules downloads only its own
    scripts, other = load(page, server.url + "/compare?run_ids=1,2")
    shared = set(named["preloads"]) & set(other["preloads"])
    assert shared, "the run and compare pages share lib/ modules"
    bodies = {e["url"] for e in scripts if e["transfer"] > 0 and e["status"] != 304}
    assert not shared & bodies, f"shared modules downloaded again: {shared & bodies}"
