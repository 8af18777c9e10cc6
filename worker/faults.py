"""Test-only fault injection (RESNET_LAB_TEST_FAULT), for stall and crash tests with real
worker processes instead of mocks. Never set it in production.

"hang:N" blocks the training thread after the run's Nth batch (counted from its first
epoch, so a resumed run reaches it at the same place), the way a kernel stuck in native code
does (the GIL released, the heartbeat thread still beating); "abort:N" calls abort() there,
as a double free or a failed assertion in native code would. A fault fires once per
installation (a marker file in its home folder), so the run can be resumed afterwards and
the next run trains normally; with ":always" ("abort:N:always") it fires in every attempt
that reaches that batch, as a crash that resuming cannot heal does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Fault(NamedTuple):
    kind: str  # "hang" or "abort"
    after: int  # batches
    always: bool


def parse(spec: str | None) -> Fault | None:
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    count, _, mode = rest.partition(":")
    if (
        kind not in ("hang", "abort")
        or not count.isascii()
        or not count.isdigit()
        or mode not in ("", "always")
    ):
        raise ValueError(
            f"RESNET_LAB_TEST_FAULT: expected hang:N, abort:N or abort:N:always, got {spec!r}"
        )
    return Fault(kind, int(count), mode == "always")


def injector(spec: str | None, home: Path) -> Callable[[int], None] | None:
    """A per-batch hook, given the run's batch number, that fires the fault after the given
    batch; None when no fault is set."""
    fault = parse(spec)
    if fault is None:
        return None

    def maybe_fire(batches_done: int) -> None:
        if batches_done != fault.after:
            return
        if not fault.always and not _first_time(home / "test-fault-fired"):
            return
        if fault.kind == "abort":
            os.abort()
        threading.Event().wait()  # forever: only the stall watchdog ends this

    return maybe_fire


def _first_time(marker: Path) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
