"""What the API benchmarks share: a `resnet-lab serve` process on a free port, and fake
epoch rows shaped like the trainer's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, log: Path | None = None, **env: str) -> subprocess.Popen:
    """`resnet-lab serve --workers 0` on the embedded broker, in its own process group."""
    environ = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "DATABASE_URL")}
    environ.update(RESNET_LAB_HOME=str(home), **env)
    cmd = [sys.executable, "-m", "app.cli", "serve", "--workers", "0", "--port", str(port)]
    return subprocess.Popen(
        [*cmd, "--home", str(home), "--loglevel", "warning"],
        env=environ,
        cwd=ROOT,
        stdout=log.open("wb") if log else None,
        stderr=subprocess.STDOUT if log else None,
        start_new_session=True,
    )


def wait_healthy(client: httpx.Client, proc: subprocess.Popen, timeout: float = 30) -> float:
    """Seconds until /healthz answered 200."""
    started = time.monotonic()
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - started > timeout:
            raise SystemExit(f"serve did not answer /healthz within {timeout:.0f} s")
        time.sleep(0.02)


def fake_epoch(epoch: int, acc: float, seconds: float = 10.0, ips: float = 5000.0) -> dict:
    return dict(
        epoch=epoch,
        lr=0.1,
        train_loss=1 - acc,
        train_acc=acc,
        test_loss=1 - acc,
        test_acc=acc,
        seconds=seconds,
        images_per_second=ips,
    )
