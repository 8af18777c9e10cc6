"""`resnet-lab serve` as a user starts it: no Redis, the embedded SQLite broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, TINY, service_env, start_serve, stop_process_group, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path):
    env = service_env(tmp_path / "home", None)
    started = time.monotonic()
    proc, base = start_serve(
        "--home", str(tmp_path / "home"), "--workers", "1", env=env, log=tmp_path / "serve.log"
    )
    yield base, time.monotonic() - started, tmp_path
    stop_process_group(proc)


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
