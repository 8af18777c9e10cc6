"""A real `resnet-lab serve` (embedded broker, one worker) per test module, for the client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, http_ok, service_env, stop_process_group, wait_for

TOKEN = "client-test-token"


@dataclass
class Served:
    url: str
    token: str
    home: Path
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """`resnet-lab serve --workers 1` as a user starts it, with API_TOKEN set (the client
    must send it); stopped with SIGTERM after the module's tests."""
    root = tmp_path_factory.mktemp("serve")
    home = root / "home"
    port = free_port()
    log = root / "serve.log"
    # STOP_GRACE: the module ends with no run in flight; a short grace keeps teardown quick.
    env = service_env(home, None, API_TOKEN=TOKEN, STOP_GRACE="3")
    env.pop("RESNET_LAB_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--home", str(home),
             "--workers", "1"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Served(f"http://127.0.0.1:{port}", TOKEN, home, log)
    try:
        wait_for(lambda: http_ok(f"{server.url}/healthz"), 60, "serve to answer /healthz")
        yield server
    finally:
        stop_process_group(proc)
