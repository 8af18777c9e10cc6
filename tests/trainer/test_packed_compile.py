"""A pack compiles as a plain run does (dynamic=False, eager when compiling fails), tries
once per train_packed call, and every pack of a call gets compiled graphs of its own."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer import packed
from trainer.precision import select_runtime

from .test_packed import one_thread  # noqa: F401 (fixture)

SMALL = dict(batch_size=32, train_limit=64, test_limit=30, precision="fp32")
MESSAGE = "torch.compile failed, training eagerly: RuntimeError: InductorError: no C compiler"


def compiling(monkeypatch) -> None:
    """train_packed's runtime compiles, as on CUDA (the CPU's never does)."""

    def runtime(config):
        return dataclasses.replace(select_runtime(config, "cpu"), compile=True)

    monkeypatch.setattr(packed, "select_runtime", runtime)


def two_packs(tiny_config):
    """Member 0 leaves after epoch 1: the pack of two, then a pack of one."""
    return [tiny_config(epochs=1, seed=0, **SMALL), tiny_config(epochs=2, seed=1, **SMALL)]


@pytest.mark.parametrize("when", ["at the first forward", "at torch.compile"])
def test_a_failed_pack_compile_trains_eagerly_says_so_once_and_is_not_tried_again(
    monkeypatch, tiny_config, caplog, when
):
    calls: list[dict] = []

    def failing(model, **kwargs):
        calls.append(kwargs)
        if when == "at torch.compile":
            raise RuntimeError("InductorError: no C compiler found")

        def compiled(x):
            raise RuntimeError("InductorError: no C compiler found\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", failing)
    compiling(monkeypatch)
    results = packed.train_packed(two_packs(tiny_config))

    assert [len(r.epochs) for r in results] == [1, 2]
    assert calls == [{"dynamic": False}], "one try, for the first pack only"
    assert [[w for w in r.warnings if w.startswith("torch.compile")] for r in results] == [
        [MESSAGE + " found"]
    ] * 2
    assert [r.message for r in caplog.records].count(MESSAGE + " found") == 1


def test_every_pack_compiles_graphs_of_its_own(monkeypatch, tiny_config):
    """Dynamo keeps a few graphs per function (8 by default; 3 here): were the first pack's
    kept, the second pack's would go past the limit and, failing as told here, fall back."""
    real = torch.compile
    compiled = []

    def eager_backend(model, **kwargs):  # dynamo's tracing and guards, no C compiler
        compiled.append(model)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_backend)
    compiling(monkeypatch)
    with torch._dynamo.config.patch(recompile_limit=3, fail_on_recompile_limit_hit=True):
        results = packed.train_packed(two_packs(tiny_config))

    assert [len(r.epochs) for r in results] == [1, 2]
    assert [m.k for m in compiled] == [2, 1]
    assert all(r.warnings == [] for r in results)
