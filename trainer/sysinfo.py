"""Facts about this machine that need no torch (the worker's telemetry reads them too)."""

from __future__ import annotations


def cpu_name() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
