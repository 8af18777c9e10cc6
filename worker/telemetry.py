"""What a worker runs on, read each time it reports in: its GPU through NVML (nvidia-ml-py)
when one is visible, else its CPU threads and how busy this process keeps them.

Every reading is best effort: a missing library, a driver error or an odd
CUDA_VISIBLE_DEVICES gives None for that field, never an exception in the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from datetime import datetime

from core import worker_registry
from core.config import get_settings
from core.db import new_session, utcnow
from core.worker_registry import WorkerReport
from trainer.sysinfo import cpu_name

log = logging.getLogger(__name__)


def _visible_gpu() -> str | None:
    """The GPU this process trains on, as CUDA_VISIBLE_DEVICES names it: an index, a UUID,
    or None when the variable hides every GPU. Unset: device 0, as torch would pick."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return "0"
    first = visible.split(",")[0].strip()
    # CUDA stops at the first entry that is neither an index nor a UUID: "" or "-1" hide all.
    if first.isdigit() or first.startswith(("GPU-", "MIG-")):
        return first
    return None


def _gpu_handle():
    """An NVML handle of this worker's GPU, or None (no library, no driver, no GPU)."""
    try:
        import pynvml
    except ImportError:
        return None
    which = _visible_gpu()
    if which is None:
        return None
    try:
        pynvml.nvmlInit()  # counted by NVML: calling it at every report is harmless
        if which.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(which))
        return pynvml.nvmlDeviceGetHandleByUUID(which)
    except Exception:  # pynvml.NVMLError, and any surprise from the driver
        return None


def _read(what: str, read):
    try:
        return read()
    except Exception:
        log.debug("could not read %s", what, exc_info=True)
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_readings(handle) -> dict:
    import pynvml

    memory = _read("GPU memory", lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    return {
        "device_kind": "cuda",
        "device_name": _read("GPU name", lambda: _text(pynvml.nvmlDeviceGetName(handle))),
        "memory_used_bytes": int(memory.used) if memory is not None else None,
        "memory_total_bytes": int(memory.total) if memory is not None else None,
        "utilization": _read(
            "GPU utilisation", lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        ),
        "temperature_c": _read(
            "GPU temperature",
            lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
        ),
    }


def cpu_threads() -> int | None:
    # torch knows best once loaded; importing it here would cost seconds and memory.
    if "torch" in sys.modules:
        threads = _read("torch threads", lambda: sys.modules["torch"].get_num_threads())
        if threads:
            return int(threads)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return _read("CPU affinity", lambda: len(os.sched_getaffinity(0))) or os.cpu_count()


class Telemetry:
    """Gathers a WorkerReport on each call. On a CPU the utilisation is this process's CPU
    time since the previous call over the wall time its threads had: 100 = all busy."""

    def __init__(self) -> None:
        self.started_at: datetime = utcnow()
        self._last: tuple[float, float] | None = None  # (wall, CPU seconds)

    def _cpu_utilization(self, threads: int | None) -> float | None:
        times = os.times()
        now = (time.monotonic(), times.user + times.system)
        last, self._last = self._last, now
        if last is None or not threads or now[0] <= last[0]:
            return None
        return round(100.0 * (now[1] - last[1]) / ((now[0] - last[0]) * threads), 1)

    def report(self) -> WorkerReport:
        base = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "pack": get_settings().pack,
        }
        try:
            handle = _gpu_handle()
            if handle is not None:
                return WorkerReport(**base, **gpu_readings(handle), cpu_threads=cpu_threads())
            threads = cpu_threads()
            return WorkerReport(
                **base,
                device_kind="cpu",
                device_name=cpu_name(),
                utilization=self._cpu_utilization(threads),
                cpu_threads=threads,
            )
        except Exception:  # a reading must never take the worker down
            log.warning("could not read this worker's device", exc_info=True)
            return WorkerReport(**base)

    def publish(self, name: str, retention: float) -> None:
        """This worker's row in the workers table, with a fresh report; rows of workers not
        seen for `retention` seconds are deleted on the way."""
        report = self.report()
        with new_session() as session:
            worker_registry.worker_seen(session, name, report)
            worker_registry.prune_workers(session, retention)
