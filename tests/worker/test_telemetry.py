"""Device readings: NVML for the GPU CUDA_VISIBLE_DEVICES names, CPU threads otherwise, and
nulls (never an exception) when a reading fails. NVML is replaced by a fake module: the
test machine has no GPU."""

from __future__ import annotations

import sys
import types

import pytest

from worker import telemetry


class NVMLError(Exception):
    pass


def fake_nvml(*, fail: set[str] = frozenset(), init_fails: bool = False) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.asked = []

    def maybe_fail(what, value):
        if what in fail:
            raise NVMLError(what)
        return value

    def init():
        if init_fails:
            raise NVMLError("Driver Not Loaded")

    nvml.nvmlInit = init
    nvml.nvmlDeviceGetHandleByIndex = lambda i: nvml.asked.append(("index", i)) or f"gpu{i}"
    nvml.nvmlDeviceGetHandleByUUID = lambda u: nvml.asked.append(("uuid", u)) or u
    nvml.nvmlDeviceGetName = lambda h: maybe_fail("name", b"NVIDIA H100 80GB HBM3")
    nvml.nvmlDeviceGetMemoryInfo = lambda h: maybe_fail(
        "memory", types.SimpleNamespace(used=2 * 2**30, total=80 * 2**30)
    )
    nvml.nvmlDeviceGetUtilizationRates = lambda h: maybe_fail(
        "utilization", types.SimpleNamespace(gpu=93, memory=40)
    )
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: maybe_fail("temperature", 64)
    return nvml


@pytest.fixture
def nvml(monkeypatch):
    def install(**options) -> types.ModuleType:
        module = fake_nvml(**options)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return install


def test_gpu_worker_reports_the_visible_gpus_name_memory_utilisation_and_temperature(
    nvml, monkeypatch
):
    module = nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    report = telemetry.Telemetry().report()
    assert module.asked == [("index", 3)]  # the first visible GPU is the one torch uses
    assert report.device_kind == "cuda" and report.device_name == "NVIDIA H100 80GB HBM3"
    assert (report.memory_used_bytes, report.memory_total_bytes) == (2 * 2**30, 80 * 2**30)
    assert (report.utilization, report.temperature_c) == (93.0, 64.0)


def test_gpu_named_by_uuid_is_looked_up_by_uuid(nvml, monkeypatch):
    module = nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f3c")
    assert telemetry.Telemetry().report().device_kind == "cuda"
    assert module.asked == [("uuid", "GPU-8f3c")]


def test_failed_gpu_readings_are_null_and_the_others_kept(nvml, monkeypatch):
    nvml(fail={"memory", "temperature"})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    report = telemetry.Telemetry().report()
    assert report.device_kind == "cuda" and report.utilization == 93.0
    assert report.memory_total_bytes is None and report.temperature_c is None


@pytest.mark.parametrize("visible", ["", "-1"])
def test_hidden_gpus_or_no_driver_give_a_cpu_report(nvml, monkeypatch, visible):
    nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    report = telemetry.Telemetry().report()
    assert report.device_kind == "cpu" and report.memory_total_bytes is None
    if "torch" not in sys.modules:  # once torch is loaded, its own thread count wins
        assert report.cpu_threads == 3


def test_no_driver_gives_a_cpu_report_with_threads(nvml, monkeypatch):
    nvml(init_fails=True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    report = telemetry.Telemetry().report()
    assert report.device_kind == "cpu" and report.cpu_threads >= 1
    assert report.host and report.pid and report.started_at


def test_cpu_utilisation_comes_from_the_second_report_on(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: no nvidia-ml-py
    probe = telemetry.Telemetry()
    assert probe.report().utilization is None  # nothing to compare with yet
    sum(i * i for i in range(200_000))  # some CPU time between the two reports
    second = probe.report()
    assert second.device_kind == "cpu" and second.utilization is not None
    assert second.utilization >= 0


def test_an_unexpected_error_leaves_a_bare_report_not_an_exception(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(telemetry, "_gpu_handle", broken)
    report = telemetry.Telemetry().report()
    assert report.device_kind is None and report.pid is not None
