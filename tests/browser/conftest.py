"""Fixtures of the browser tests: a real `resnet-lab serve` (web app + one local worker) on a
free port with a temporary home, and headless Chromium (Debian's) driven by Playwright.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import SCREENSHOTS, start_serve, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    log: Path
    proc: subprocess.Popen

    def get(self, path: str, timeout: float = 5) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict | None = None, timeout: float = 10) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _resnet_lab() -> list[str] | None:
    """The installed `resnet-lab` script beside this Python, when there is one."""
    script = Path(sys.executable).with_name("resnet-lab")
    return [str(script)] if script.exists() else None


@pytest.fixture(scope="module")
def serve_workers() -> int:
    """Local workers of the module's server; a module whose runs must stay queued (nothing
    trains them) overrides this fixture with 0."""
    return 1


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_workers) -> Iterator[Server]:
    """`resnet-lab serve --workers N` (serve_workers, 1 unless a module says otherwise) on a
    free port; ready once /healthz answers 200."""
    home = tmp_path_factory.mktemp("resnet-lab-home")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("API_TOKEN", "BROKER_URL", "DATABASE_URL", "DATA_DIR", "RUNS_DIR")
    }
    env.update(RESNET_LAB_HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    log = home / "serve.log"
    proc, url = start_serve(
        "--home", str(home), "--workers", str(serve_workers), env=env, log=log,
        command=_resnet_lab(),
    )  # fmt: skip
    try:
        yield Server(url, home, log, proc)
    finally:
        stop_process_group(proc)


@dataclass
class Watch:
    """Everything a page did that a test must check: requests, console errors, page errors."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # (status, path) of responses that a test provokes on purpose, e.g. (422, "/api/runs")
    # from a bad form: Chromium logs every 4xx/5xx response as a console error.
    expected_responses: set[tuple[int, str]] = field(default_factory=set)

    def foreign_requests(self) -> list[str]:
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob", "about")
            and urlsplit(u).hostname not in LOCAL_HOSTS
        ]

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        where = message.location.get("url", "")
        for status, path in self.expected_responses:
            if f"status of {status}" in text and urlsplit(where).path == path:
                return
        self.console_errors.append(f"{text} ({where})")


@contextmanager
def chromium(**launch_options) -> Iterator:
    """Debian's headless Chromium through Playwright (skips the test without it)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            **launch_options,
        )
        yield browser
        browser.close()


@contextmanager
def watched_page(browser, watch: Watch, width: int = 1280) -> Iterator:
    """A page in a fresh context whose requests, console errors and page errors `watch` keeps."""
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.on("request", lambda request: watch.requests.append(request.url))
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser, watch):
    with watched_page(browser, watch) as page:
        yield page


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """artifacts/screenshots/, emptied once per test session (tests/conftest.py)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
