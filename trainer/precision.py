"""Where and in what number format a run trains: device, autocast dtype, memory layout.

auto precision uses bf16 autocast only where the hardware does bf16 natively (CUDA GPUs with
bf16, CPUs with AVX-512 BF16 or AMX): on a CPU without them, bf16 is emulated and measured
3-4x slower than fp32 (Xeon with AVX-512 but no avx512_bf16, torch 2.14, ResNet18 width 64),
so there auto means fp32. precision=fp32 always trains in fp32; precision=bf16 forces bf16
autocast even where it is emulated.

The memory layout is chosen per device (see `choose_layout`): channels_last on CUDA,
contiguous NCHW on every CPU.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainer.sysinfo import cpu_name
from trainer.version import code_version

if TYPE_CHECKING:  # only for annotations: these modules run without pydantic
    from trainer.config import TrainConfig


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool
    layout_reason: str = ""

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


def choose_layout(device: torch.device) -> tuple[bool, str]:
    """(channels_last, why) for this device.

    CUDA: channels_last, the layout cuDNN's tensor-core convolutions want.
    Every CPU: contiguous NCHW. oneDNN's channels_last backward has crashed or hung on each
    kind of CPU this project has met (torch 2.14): a 1x1 stride-2 convolution with 2-5 input
    channels spins forever on AVX2-only EPYC, and a ragged batch of 29 at width 8 segfaults
    with 2 threads on EPYC with AVX-512 BF16. It was faster only on one Xeon (72 vs 59 img/s
    at width 64), which does not pay for a process that dies; NCHW trained every shape of
    tests/trainer/test_layout.py's matrix on all three.
    """
    if device.type == "cuda":
        return True, "CUDA: channels_last suits cuDNN"
    return False, (
        f"CPU {_cpu_capability()}: contiguous NCHW (oneDNN's channels_last backward is not "
        "safe on every CPU)"
    )


def _cpu_capability() -> str:
    """The instruction set torch dispatches CPU kernels to: AVX512, AVX2, DEFAULT, SVE..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def select_runtime(
    config: TrainConfig, device: str | None = None, channels_last: bool | None = None
) -> Runtime:
    """CUDA when available, else CPU; autocast, layout and compile per the config.

    channels_last=None lets `choose_layout` decide; True or False forces it (benchmarks).
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
        # Emulated bf16 (pre-Ampere GPUs) is slower than fp32: auto takes native bf16 only.
        native_bf16 = _cuda_native_bf16()
    else:
        native_bf16 = cpu_has_native_bf16()
    if config.precision == "bf16" or (config.precision == "auto" and native_bf16):
        dtype = torch.bfloat16
    else:
        dtype = None
    chosen, reason = choose_layout(dev)
    if channels_last is not None and channels_last != chosen:
        chosen, reason = channels_last, f"forced {'channels_last' if channels_last else 'NCHW'}"
    return Runtime(
        device=dev,
        autocast_dtype=dtype,
        channels_last=chosen,
        compile=config.compile and dev.type == "cuda",
        layout_reason=reason,
    )


def _cuda_native_bf16() -> bool:
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 has no including_emulation and reports native only
        return torch.cuda.is_bf16_supported()


def describe_environment(runtime: Runtime) -> dict[str, str]:
    """Versions and hardware, for RunResult.environment."""
    env = {
        "torch": torch.__version__,
        "device": str(runtime.device),
        "precision": runtime.precision,
        "channels_last": str(runtime.channels_last),
        "cpu_capability": _cpu_capability(),
        "compile": str(runtime.compile),
        "cpu": _cpu_name(),
        "cpu_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "code": code_version(),
    }
    if runtime.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(runtime.device)
        env["cuda"] = str(torch.version.cuda)
    return env


def _cpu_name() -> str:
    return cpu_name() or platform.processor() or platform.machine()


class CompiledOrEager:
    """The forward a run calls: torch.compile'd when the runtime asks for it, the model itself
    otherwise, and the model itself for good when compiling fails.

    torch.compile fails lazily, at the first forward (no Triton, no C compiler): that first
    call falls back to eager, says why in `warnings` (the run's result) and the log, and the
    run goes on. Later errors are the model's and propagate. dynamic=False: one graph per
    input shape (full batch, last partial batch, evaluation), each compiled once. Calls,
    train() and eval() go to the model, whose state_dict keys stay plain for checkpoints.
    """

    def __init__(self, model: torch.nn.Module, runtime: Runtime, warnings: list[str]):
        self.model = model
        self.warnings = warnings
        self._compiled = None
        self._proven = False
        if runtime.compile:
            try:
                self._compiled = torch.compile(model, dynamic=False)
            except Exception as exc:  # no compiler for this platform at all
                self._fall_back(exc)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            return self.model(x)
        if self._proven:
            return self._compiled(x)
        try:
            out = self._compiled(x)
        except Exception as exc:
            self._fall_back(exc)
            return self.model(x)
        self._proven = True
        return out

    def _fall_back(self, exc: Exception) -> None:
        self._compiled = None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        message = f"torch.compile failed, training eagerly: {type(exc).__name__}: {first}"
        self.warnings.append(message)
        log.warning(message)

    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> CompiledOrEager:
        self.model.train(mode)
        return self

    def eval(self) -> CompiledOrEager:
        return self.train(False)
