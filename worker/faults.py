"""Test-only fault injection (RESNET_LAB_TEST_FAULT), for stall and crash tests with real
worker processes instead of mocks.

"hang:N" blocks the training thread after N batches, the way a kernel stuck in native code
does (the GIL released, the heartbeat thread still beating); "abort:N" calls abort() there,
as a double free or a failed assertion in native code would. A fault fires once per
installation (a marker file in its home folder), so the run can be resumed afterwards and
the next run trains normally.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    kind, _, count = spec.partition(":")
    if kind not in ("hang", "abort") or not count.isascii() or not count.isdigit():
        raise ValueError(f"RESNET_LAB_TEST_FAULT: expected hang:N or abort:N, got {spec!r}")
    return kind, int(count)


def injector(spec: str | None, home: Path) -> Callable[[int], None] | None:
    """A per-batch hook that fires the fault after the given batch, or None."""
    fault = parse(spec)
    if fault is None:
        return None
    kind, after = fault

    def maybe_fire(batches_done: int) -> None:
        if batches_done == after and _first_time(home / "test-fault-fired"):
            if kind == "abort":
                os.abort()
            threading.Event().wait()  # forever: only the stall watchdog ends this

    return maybe_fire


def _first_time(marker: Path) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
