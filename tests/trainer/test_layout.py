"""The memory-layout rule, proven over the shapes that occur: on whatever CPU runs the suite,
the layout and number format the trainer picks must train every width, batch size (a ragged
last batch included) and thread count without crashing or hanging oneDNN.

Each thread count runs in a subprocess with a deadline, so a torch upgrade that brings back a
native crash (SIGSEGV on AVX-512 EPYC) or a hang (1x1 backward on AVX2 EPYC) fails here with
the shape it died on, instead of taking the suite down."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading

import pytest
import torch

from trainer.precision import choose_layout, select_runtime

WIDTHS = (2, 3, 4, 5, 8, 16)  # 2-5: the 1x1 stride-2 shortcuts that hung oneDNN on AVX2
BATCHES = (64, 29, 7, 1)  # 29: digits' last batch at 64, which crashed AVX-512 EPYC

# Forward, backward and SGD step of the plain and the packed network (grouped convolutions,
# two members), for every shape, in the layout and autocast dtype a run picks on this CPU;
# then an evaluation forward. Prints each shape before it trains it: the last line names the
# shape a crash happened on.
PROBE = """
import sys, torch
from trainer.config import TrainConfig
from trainer.model import build_model
from trainer.packed_model import PackedResNet18
from trainer.precision import select_runtime
from trainer.step import train_step

torch.set_num_threads(int(sys.argv[1]))
widths = [int(w) for w in sys.argv[2].split(",")]
batches = [int(b) for b in sys.argv[3].split(",")]
for precision in ("fp32", "auto"):
    for width in widths:
        config = TrainConfig(dataset="digits", width=width, precision=precision)
        runtime = select_runtime(config, "cpu")
        torch.manual_seed(0)
        models = {
            "plain": build_model(config, 10),
            "packed": PackedResNet18([("relu", 0.01), ("tanh", 0.01)], 10, width),
        }
        for name, model in models.items():
            model = model.to(memory_format=runtime.memory_format)
            sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            channels = 3 * (2 if name == "packed" else 1)
            for batch in batches:
                print(name, runtime.precision, "width", width, "batch", batch, flush=True)
                x = torch.randn(batch, channels, 32, 32).contiguous(
                    memory_format=runtime.memory_format
                )
                y = torch.randint(0, 10, (batch,) + ((2,) if name == "packed" else ()))
                step_forward = model if name == "plain" else (lambda t: model(t).flatten(0, 1))
                train_step(step_forward, sgd, runtime, x, y.flatten())
            model.eval()
            with torch.no_grad(), runtime.autocast():
                model(torch.randn(7, channels, 32, 32).contiguous(
                    memory_format=runtime.memory_format))
print("ok")
"""


# A shape takes well under a second; one that has not finished in this long is a hang (the
# deadline is per shape, so a loaded machine that runs every shape slowly still passes).
SHAPE_DEADLINE = 120


def run_probe(threads: int) -> tuple[int | None, list[str], str]:
    """(exit code, or None when a shape hung; the lines printed; the end of stderr)."""
    args = [str(threads), ",".join(map(str, WIDTHS)), ",".join(map(str, BATCHES))]
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, *args], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for line in proc.stdout:
                lines.put(line.strip())
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        printed: list[str] = []
        try:
            while (line := lines.get(timeout=SHAPE_DEADLINE)) is not None:
                printed.append(line)
        except queue.Empty:
            proc.kill()
            proc.wait()
            return None, printed, ""
        code = proc.wait()
        stderr.seek(0)
        return code, printed, stderr.read()[-2000:]


@pytest.mark.parametrize("threads", [1, 2])
def test_chosen_cpu_layout_trains_every_shape(threads):
    _, reason = choose_layout(torch.device("cpu"))
    code, shapes, stderr = run_probe(threads)
    assert code is not None, (
        f"the layout chosen for this CPU ({reason}) hung after {shapes[-1:]}: no shape "
        f"finished in {SHAPE_DEADLINE} s"
    )
    assert code == 0 and shapes[-1:] == ["ok"], (
        f"the layout chosen for this CPU ({reason}) crashed at {shapes[-1:]} (rc {code}): {stderr}"
    )
    # Every shape was trained, in both number formats.
    assert len(shapes) - 1 == 2 * len(WIDTHS) * 2 * len(BATCHES)


def test_every_cpu_trains_in_nchw_and_cuda_in_channels_last(monkeypatch):
    from trainer import precision

    for capability in ("AVX512", "AVX2", "DEFAULT", "SVE256"):
        monkeypatch.setattr(precision, "_cpu_capability", lambda c=capability: c)
        channels_last, reason = choose_layout(torch.device("cpu"))
        assert channels_last is False and capability in reason
    assert choose_layout(torch.device("cuda"))[0] is True


def test_runtime_reports_its_layout_and_why(tiny_config):
    runtime = select_runtime(tiny_config(), "cpu")
    expected, reason = choose_layout(torch.device("cpu"))
    assert runtime.channels_last is expected
    assert runtime.layout_reason == reason
    forced = select_runtime(tiny_config(), "cpu", channels_last=not expected)
    assert forced.channels_last is not expected and "forced" in forced.layout_reason
