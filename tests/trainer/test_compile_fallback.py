"""torch.compile fails lazily, at the first forward (no Triton, no C compiler): the run falls
back to eager with a warning instead of failing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer import loop
from trainer.precision import CompiledOrEager, select_runtime


def failing_compile(calls: list[str]):
    def compile(model, **kwargs):
        def compiled(x):
            calls.append("compiled")
            raise RuntimeError("InductorError: no C compiler found\nmore detail")

        return compiled

    return compile


def compiling_runtime(config):
    return dataclasses.replace(select_runtime(config, "cpu"), compile=True)


def test_a_compile_that_fails_at_the_first_forward_falls_back_to_eager_once(
    monkeypatch, tiny_config
):
    calls: list[str] = []
    monkeypatch.setattr(torch, "compile", failing_compile(calls))
    model = torch.nn.Linear(3, 2)
    warnings: list[str] = []
    forward = CompiledOrEager(model, compiling_runtime(tiny_config()), warnings)
    x = torch.randn(4, 3)

    assert torch.equal(forward(x), model(x))
    assert torch.equal(forward(x), model(x))
    assert calls == ["compiled"], "after a failed compile, the eager model is used for good"
    assert warnings == [
        "torch.compile failed, training eagerly: RuntimeError: InductorError: no C compiler found"
    ]
    forward.eval()
    assert model.training is False and forward.training is False


def test_an_error_after_a_working_compile_is_the_models_and_propagates(monkeypatch, tiny_config):
    state = {"calls": 0}

    def compile(model, **kwargs):
        def compiled(x):
            state["calls"] += 1
            if state["calls"] > 1:
                raise ValueError("a real error in the model")
            return model(x)

        return compiled

    monkeypatch.setattr(torch, "compile", compile)
    forward = CompiledOrEager(torch.nn.Linear(3, 2), compiling_runtime(tiny_config()), [])
    forward(torch.randn(1, 3))
    with pytest.raises(ValueError, match="a real error"):
        forward(torch.randn(1, 3))


def test_a_run_whose_compile_fails_trains_eagerly_and_says_so(monkeypatch, tiny_config):
    monkeypatch.setattr(torch, "compile", failing_compile([]))
    monkeypatch.setattr(loop, "select_runtime", lambda config: compiling_runtime(config))
    result = loop.train(tiny_config(epochs=1, precision="fp32"))

    assert len(result.epochs) == 1 and not result.stopped_early
    assert any("torch.compile failed, training eagerly" in w for w in result.warnings)


def test_a_runtime_without_compile_never_calls_torch_compile(monkeypatch, tiny_config):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled"))
    runtime = select_runtime(tiny_config(compile=True), "cpu")
    assert runtime.compile is False  # compile is for CUDA only
    forward = CompiledOrEager(torch.nn.Linear(3, 2), runtime, [])
    assert forward(torch.randn(2, 3)).shape == (2, 2)
