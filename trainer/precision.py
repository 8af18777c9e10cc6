"""Where and in what number format a run trains: device, autocast dtype, memory layout.

auto precision uses bf16 autocast only where the hardware does bf16 natively (CUDA GPUs with
bf16, CPUs with AVX-512 BF16 or AMX): on a CPU without them, bf16 is emulated and measured
3-4x slower than fp32 (Xeon with AVX-512 but no avx512_bf16, torch 2.14, ResNet18 width 64),
so there auto means fp32. precision=fp32 always trains in fp32; precision=bf16 forces bf16
autocast even where it is emulated.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # only for annotations: these modules run without pydantic
    from trainer.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPU features oneDNN needs for fast bf16 convolutions."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def select_runtime(config: TrainConfig, device: str | None = None) -> Runtime:
    """CUDA when available, else CPU; autocast, layout and compile per the config."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
        native_bf16 = torch.cuda.is_bf16_supported()
    else:
        native_bf16 = cpu_has_native_bf16()
    if config.precision == "bf16" or (config.precision == "auto" and native_bf16):
        dtype = torch.bfloat16
    else:
        dtype = None
    # channels_last (NHWC) is what cuDNN's tensor-core and oneDNN's CPU convolutions prefer;
    # measured faster on CPU in fp32 too (72 vs 59 img/s at width 64).
    return Runtime(
        device=dev,
        autocast_dtype=dtype,
        channels_last=True,
        compile=config.compile and dev.type == "cuda",
    )


def describe_environment(runtime: Runtime) -> dict[str, str]:
    """Versions and hardware, for RunResult.environment."""
    env = {
        "torch": torch.__version__,
        "device": str(runtime.device),
        "precision": runtime.precision,
        "channels_last": str(runtime.channels_last),
        "compile": str(runtime.compile),
        "cpu": _cpu_name(),
        "cpu_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }
    if runtime.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(runtime.device)
        env["cuda"] = str(torch.version.cuda)
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
