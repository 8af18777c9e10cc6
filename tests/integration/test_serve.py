"""`resnet-lab serve` as a user starts it: no Redis, the embedded SQLite broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, TINY, free_port, http_ok, service_env, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = service_env(tmp_path / "home", None)
    log = open(tmp_path / "serve.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--port",
            str(port),
            "--home",
            str(tmp_path / "home"),
            "--workers",
            "1",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    wait_for(lambda: http_ok(f"{base}/healthz"), 30, "serve to answer /healthz")
    yield base, time.monotonic() - started, tmp_path
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_serve_without_redis_completes_a_run(served):
    base, _, tmp_path = served
    response = httpx.post(f"{base}/api/runs", json=TINY)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    def finished():
        run = httpx.get(f"{base}/api/runs/{run_id}").json()
        return run["status"] in ("succeeded", "failed") and run

    run = wait_for(finished, 120, f"the run ({(tmp_path / 'serve.log').read_text()[-2000:]})")
    assert run["status"] == "succeeded", run["error"]
    assert len(httpx.get(f"{base}/api/runs/{run_id}/metrics").json()["epochs"]) == TINY["epochs"]
    assert (tmp_path / "home" / "resnet-lab.db").is_file()
    assert not os.environ.get("BROKER_URL")
    workers = httpx.get(f"{base}/healthz").json()["workers"]
    assert workers, "the local worker should have reported in"


def test_serve_refuses_a_public_host_without_a_token(tmp_path):
    env = service_env(tmp_path / "home", None)
    env.pop("API_TOKEN", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--workers",
            "0",
            "--home",
            str(tmp_path / "home"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "API_TOKEN" in result.stderr
