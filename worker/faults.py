"""Test-only fault injection (RESNET_LAB_TEST_FAULT), for stall and crash tests with real
worker processes instead of mocks. Never set it in production.

"hang:N" blocks the training thread after the run's Nth batch (counted from its first
epoch, so a resumed run reaches it at the same place), the way a kernel stuck in native code
does (the GIL released, the heartbeat thread still beating); "abort:N" calls abort() there,
as a double free or a failed assertion in native code would; "pause:N" stops the whole
process (SIGSTOP, as a laptop's sleep or a debugger does) right before it publishes its Nth
checkpoint of a run (epoch N's, for a fresh CPU run), so that another worker takes the run
over until a SIGCONT wakes it at the very point where it used to overwrite the successor's.
A fault fires once per installation (a marker file in its home folder), so the run can be
resumed afterwards and the next run trains normally; with ":always" ("abort:N:always") it
fires in every attempt that reaches that batch, as a crash that resuming cannot heal does.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Fault(NamedTuple):
    kind: str  # "hang" or "abort" (after a batch), "pause" (before a checkpoint)
    after: int  # the run's batch, or the process's checkpoint of the run
    always: bool


def parse(spec: str | None) -> Fault | None:
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    count, _, mode = rest.partition(":")
    if (
        kind not in ("hang", "abort", "pause")
        or not count.isascii()
        or not count.isdigit()
        or mode not in ("", "always")
    ):
        raise ValueError(
            "RESNET_LAB_TEST_FAULT: expected hang:N, abort:N, abort:N:always or pause:E, got "
            f"{spec!r}"
        )
    return Fault(kind, int(count), mode == "always")


def injector(spec: str | None, home: Path) -> Callable[[int], None] | None:
    """A per-batch hook, given the run's batch number, that fires the fault after the given
    batch; None when no fault is set."""
    fault = parse(spec)
    if fault is None or fault.kind == "pause":
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


def pause_injector(spec: str | None, home: Path) -> Callable[[int], None] | None:
    """A hook called before each checkpoint is published, with its number, that pauses this
    process before the given one (once per installation); None when no pause is set."""
    fault = parse(spec)
    if fault is None or fault.kind != "pause":
        return None

    def maybe_pause(number: int) -> None:
        if number == fault.after and _first_time(home / "test-fault-fired"):
            os.kill(os.getpid(), signal.SIGSTOP)

    return maybe_pause


def _first_time(marker: Path) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
