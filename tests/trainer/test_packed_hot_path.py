"""A pack's hot path: SGD in place and exactly torch's, evaluation counted on the device
without bincount, and members with equal activations side by side."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trainer import packed, train
from trainer.config import TrainConfig
from trainer.loop import _Epochs, load_on_device
from trainer.model import ResNet18
from trainer.packed_members import Member, Pack
from trainer.packed_model import PackedActivation, PackedResNet18, grouped_order, join
from trainer.packed_step import PackedSGD
from trainer.precision import CompiledOrEager, select_runtime

from .conftest import TINY_TRAIN
from .test_packed import float64, one_thread  # noqa: F401 (fixtures)

# Per member: lr, momentum, weight decay. Members 0 and 2 agree on everything but lr, so
# the optimizer's groups are not all runs of neighbours.
HYPER = [(0.1, 0.9, 5e-4), (0.05, 0.0, 0.0), (0.02, 0.9, 5e-4), (0.1, 0.5, 1e-3)]


class _Ops(TorchDispatchMode):
    """The aten ops called under it, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func._schema.name.removeprefix("aten::"))
        return func(*args, **(kwargs or {}))


def test_packed_sgd_updates_in_place_exactly_as_torch_sgd_updates_each_member():
    torch.manual_seed(0)
    k = len(HYPER)
    models = [ResNet18(10, 2) for _ in range(k)]
    sgds = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=mom, weight_decay=wd)
        for m, (lr, mom, wd) in zip(models, HYPER)
    ]
    pack = PackedResNet18([("relu", 0.01)] * k, 10, 2)
    pack.load_members([m.state_dict() for m in models])
    params = list(pack.parameters())
    opt = PackedSGD(
        params, k, lr=[h[0] for h in HYPER], momentum=[h[1] for h in HYPER],
        weight_decay=[h[2] for h in HYPER],
    )  # fmt: skip
    names = [n for n, _ in pack.named_parameters()]
    for step in range(3):
        if step == 2:  # a new epoch's lrs
            lrs = [0.01, 0.01, 0.03, 0.01]
            opt.set_lr(lrs)
            for sgd, lr in zip(sgds, lrs):
                sgd.param_groups[0]["lr"] = lr
        member_grads = [[torch.randn_like(p) for p in m.parameters()] for m in models]
        for m, grads in zip(models, member_grads):
            for p, g in zip(m.parameters(), grads):
                p.grad = g.clone()
        for i, (name, p) in enumerate(zip(names, params)):
            p.grad = join(name, [grads[i] for grads in member_grads]).view(p.shape)
        for sgd in sgds:
            sgd.step()
        ops = _Ops()
        with ops:
            opt.step()
        # In place: no op that makes a tensor (views of the parameters are not copies).
        assert ops.names and all(n.endswith("_") or n in ("slice", "narrow") for n in ops.names)
        for j, model in enumerate(models):
            mine = pack.member_state_dict(j)
            for name, p in model.named_parameters():
                assert torch.equal(mine[name], p), (step, j, name)
            buffers = opt.member_buffers(j)
            if HYPER[j][1]:
                theirs = [sgds[j].state[p]["momentum_buffer"] for p in model.parameters()]
                assert all(torch.equal(a.view(b.shape), b) for a, b in zip(buffers, theirs))
            else:
                assert buffers is None


def member_configs(activations: list[str]) -> list[TrainConfig]:
    base = {**TINY_TRAIN, "test_limit": 150, "precision": "fp32", "normalize": True}
    return [TrainConfig(**base, activation=a, seed=s) for s, a in enumerate(activations)]


def start_members(configs, runtime, classes: int) -> list[Member]:
    members = []
    for i, config in enumerate(configs):
        member = Member.start(config, runtime, classes)
        member.index = i
        # Running statistics of its own, so that members predict differently in eval mode.
        with torch.no_grad():
            member.model(torch.rand(16, 3, 8, 8) * (i + 1))
        members.append(member)
    return members


@pytest.mark.usefixtures("float64")
def test_packed_evaluation_counts_what_each_members_own_evaluation_counts(monkeypatch):
    configs = member_configs(["relu", "tanh", "relu"])
    runtime = select_runtime(configs[0], "cpu")
    data = load_on_device(configs[0], None, runtime)
    members = start_members(configs, runtime, len(data.classes))
    pack = Pack(members, runtime, len(data.classes))
    monkeypatch.setattr(torch, "bincount", lambda *a, **k: pytest.fail("bincount"))
    monkeypatch.setattr(packed, "EVAL_BATCH_SIZE", 64)  # several batches: 21 images each
    tests = packed._evaluate_packed(pack, data, runtime)

    for member, (loss, acc, confusion) in zip(pack.members, tests):
        forward = CompiledOrEager(member.model, runtime, [])
        epochs = _Epochs(member, data, runtime, forward, lambda: False, None, False)
        plain_loss, plain_acc, plain_confusion = epochs.evaluate()
        assert torch.equal(confusion, plain_confusion), member.index
        assert acc == plain_acc and confusion.sum() == 150
        assert loss == pytest.approx(plain_loss, rel=1e-6)  # float32 losses
    # Not a vacuous match: the members predict differently.
    assert len({tuple(c.flatten().tolist()) for _, _, c in tests}) == 3


def test_a_pack_puts_equal_activations_side_by_side():
    specs = [("relu", 0.01), ("tanh", 0.01), ("relu", 0.3), ("leaky_relu", 0.2),
             ("tanh", 0.01), ("leaky_relu", 0.1)]  # fmt: skip
    assert grouped_order(specs) == [0, 2, 1, 4, 3, 5]
    # A slope is no difference where the activation has none.
    assert [r[:2] for r in PackedActivation([specs[i] for i in (0, 2)], 4).runs] == [(0, 2)]
    ordered = PackedActivation([specs[i] for i in grouped_order(specs)], 4)
    assert [r[:2] for r in ordered.runs] == [(0, 2), (2, 4), (4, 5), (5, 6)]

    configs = member_configs(["relu", "tanh", "relu"])
    runtime = select_runtime(configs[0], "cpu")
    pack = Pack(start_members(configs, runtime, 10), runtime, 10)
    assert [m.index for m in pack.members] == [0, 2, 1]
    assert len(pack.model.stem[2].runs) == 2


@pytest.mark.usefixtures("float64")
def test_a_regrouped_pack_trains_and_reports_each_member_as_its_own_run():
    configs = [
        c.model_copy(update={"epochs": 2, "train_limit": 64, "batch_size": 32})
        for c in member_configs(["relu", "tanh", "relu"])
    ]
    plain = [train(c) for c in configs]
    seen = []
    results = packed.train_packed(configs, on_epoch=lambda i, m: seen.append((i, m.epoch)))
    assert seen == [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)]
    for config, mine, theirs in zip(configs, results, plain):
        assert mine.config == config
        assert [m.train_loss for m in mine.epochs] == pytest.approx(
            [m.train_loss for m in theirs.epochs], abs=1e-9, rel=0
        )
        assert mine.confusion_matrix == theirs.confusion_matrix
