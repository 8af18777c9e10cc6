"""The memory-layout rule: on whatever CPU runs the suite, the layout the trainer picks must
train the shapes that hung or crashed oneDNN (a torch upgrade that brings the hang back fails
here, in a subprocess with a deadline, instead of hanging the suite)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from trainer.precision import choose_layout, select_runtime

# The shortcut of a width-4 ResNet18: a 1x1, stride-2 convolution with 2-5 input channels.
# Its backward spins forever or aborts in channels_last on AVX2-only CPUs (torch 2.14).
PROBE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
channels_last = sys.argv[2] == "1"
fmt = torch.channels_last if channels_last else torch.contiguous_format
for c in (2, 3, 4, 5, 8):
    for _ in range(10):
        conv = torch.nn.Conv2d(c, 8, 1, stride=2, bias=False).to(memory_format=fmt)
        x = torch.randn(64, c, 32, 32).to(memory_format=fmt).requires_grad_()
        conv(x).sum().backward()
print("ok")
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_chosen_cpu_layout_trains_the_shapes_that_hang_oneDNN(threads):
    channels_last, reason = choose_layout(torch.device("cpu"))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(threads), "1" if channels_last else "0"],
        capture_output=True,
        text=True,
        timeout=120,  # the backward takes milliseconds; a hang is caught, never waited out
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"the layout chosen for this CPU ({reason}) crashed or hung a 1x1 stride-2 backward: "
        f"rc {result.returncode}, {result.stderr[-2000:]}"
    )


def test_layout_follows_the_cpu_capability(monkeypatch):
    from trainer import precision

    monkeypatch.setattr(precision, "_cpu_capability", lambda: "AVX2")
    assert choose_layout(torch.device("cpu"))[0] is False
    monkeypatch.setattr(precision, "_cpu_capability", lambda: "AVX512")
    assert choose_layout(torch.device("cpu"))[0] is True
    monkeypatch.setattr(precision, "_cpu_capability", lambda: "DEFAULT")
    assert choose_layout(torch.device("cpu"))[0] is False
    assert choose_layout(torch.device("cuda"))[0] is True


def test_runtime_reports_its_layout_and_why(tiny_config):
    runtime = select_runtime(tiny_config(), "cpu")
    expected, reason = choose_layout(torch.device("cpu"))
    assert runtime.channels_last is expected
    assert runtime.layout_reason == reason
    forced = select_runtime(tiny_config(), "cpu", channels_last=not expected)
    assert forced.channels_last is not expected and "forced" in forced.layout_reason
