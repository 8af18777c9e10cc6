"""train_packed(): a pack trains each member as trainer.train would, and resumes either way."""

from __future__ import annotations

import pytest
import torch

from trainer import checkpoint, train
from trainer.config import TrainConfig
from trainer.model import ResNet18
from trainer.packed import pack_key, train_packed
from trainer.packed_model import PackedResNet18

from .conftest import TINY_TRAIN
from .test_loop import exact, stop_at_call

# One batch per epoch, so each epoch's train_loss is the loss of exactly one step.
ONE_STEP_EPOCHS = dict(
    dataset="digits",
    width=4,
    batch_size=32,
    train_limit=32,
    test_limit=30,
    precision="fp32",
    normalize=True,
)

# Members that differ in everything a member may differ in. 6 epochs of 2:1:1 switch lr
# after epochs 3 and 5; 1:1:1 after 2 and 4; member 2 trains 7 epochs of 5:3:2.
MEMBERS = [
    dict(activation="relu", augmentation="none", seed=0, lr_ratio="2:1:1", epochs=6),
    dict(
        activation="tanh", augmentation="crop_flip", seed=1, lr_ratio="1:1:1", epochs=6,
        lr=0.05, momentum=0.5, weight_decay=1e-3,
    ),
    dict(
        activation="leaky_relu", leaky_relu_slope=0.2, augmentation="crop_flip_blur_color",
        seed=2, lr_ratio="5:3:2", epochs=7, momentum=0.0,
    ),
]  # fmt: skip


def one_step_configs() -> list[TrainConfig]:
    return [TrainConfig(**{**ONE_STEP_EPOCHS, **m}) for m in MEMBERS]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these tests share a small machine with others."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def float64():
    """Train in float64, so that packed and separate runs agree to rounding (~1e-14)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def buffers(state: dict) -> dict[str, torch.Tensor]:
    return {str(i): s["momentum_buffer"] for i, s in state["optimizer"]["state"].items()}


def assert_close_runs(a, b, tol: float = 1e-9) -> None:
    """Same epochs and lrs, losses within tol, equal accuracies: for float64 runs, where
    rounding cannot move an accuracy."""
    assert [m.epoch for m in a.epochs] == [m.epoch for m in b.epochs]
    assert [m.lr for m in a.epochs] == [m.lr for m in b.epochs]
    for x, y in zip(a.epochs, b.epochs):
        assert x.train_loss == pytest.approx(y.train_loss, abs=tol, rel=0)
        assert x.test_loss == pytest.approx(y.test_loss, abs=1e-5, rel=0)  # fp32 logits
        assert x.train_acc == y.train_acc and x.test_acc == y.test_acc


def test_packed_members_equal_separate_runs_in_float64(float64, tmp_path):
    configs = one_step_configs()
    plain = [train(c, checkpoint_dir=tmp_path / f"plain{i}") for i, c in enumerate(configs)]
    packed = train_packed(configs, checkpoint_dirs=[tmp_path / f"pack{i}" for i in range(3)])

    assert [len(r.epochs) for r in packed] == [6, 6, 7]
    assert len({m.lr for m in packed[2].epochs}) == 3  # every lr phase was trained
    for i, (a, b) in enumerate(zip(plain, packed)):
        assert b.config == configs[i] and not b.stopped_early
        assert_close_runs(a, b)
        mine = torch.load(tmp_path / f"pack{i}" / "last.pt", weights_only=True)
        theirs = torch.load(tmp_path / f"plain{i}" / "last.pt", weights_only=True)
        assert mine.keys() == theirs.keys()
        assert max_diff(mine["model"], theirs["model"]) < 1e-9
        assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
        assert buffers(mine).keys() == buffers(theirs).keys()  # none without momentum
        if configs[i].momentum:
            assert max_diff(buffers(mine), buffers(theirs)) < 1e-9
        assert all(torch.equal(mine["rng"][k], theirs["rng"][k]) for k in theirs["rng"])
        assert mine["rng"].keys() == theirs["rng"].keys()
        assert mine["epoch"] == theirs["epoch"] and mine["schedule"] == theirs["schedule"]


def test_packed_forward_is_each_members_forward_and_unpacks_exactly():
    torch.manual_seed(0)
    specs = [("relu", 0.01), ("sigmoid", 0.01), ("leaky_relu", 0.3), ("relu", 0.01)]
    models = [ResNet18(10, 6, name, slope) for name, slope in specs]
    x = torch.rand(5, 4, 3, 32, 32)
    for model in models:  # give BatchNorm running statistics of its own
        model(torch.rand(8, 3, 32, 32))
        model.eval()
    packed = PackedResNet18(specs, 10, 6)
    packed.load_members([m.state_dict() for m in models])
    packed.eval()
    out = packed(x.flatten(1, 2))
    assert out.shape == (5, 4, 10)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[:, k], model(x[:, k]), rtol=1e-5, atol=1e-5)
        back = packed.member_state_dict(k)
        assert back.keys() == model.state_dict().keys()
        assert all(torch.equal(back[n], t) for n, t in model.state_dict().items())


# Every random source in play, at three batches per epoch.
RESUME = {
    **TINY_TRAIN,
    "batch_size": 32,
    "train_limit": 96,
    "test_limit": 30,
    "augmentation": "crop_flip_blur_color",
    "normalize": True,
}


def resume_configs() -> list[TrainConfig]:
    return [
        TrainConfig(**RESUME, seed=3),
        TrainConfig(**{**RESUME, "activation": "tanh", "augmentation": "crop_flip"}, seed=4),
    ]


def test_a_pack_stopped_mid_epoch_resumes_to_the_uninterrupted_pack(tmp_path):
    configs = resume_configs()
    whole = train_packed(configs)
    dirs = [tmp_path / "a", tmp_path / "b"]
    # Three batches per epoch: calls 1-3 are epoch 1, call 5 is inside epoch 2.
    stops = [stop_at_call(5), stop_at_call(5)]
    stopped = train_packed(configs, should_stop=lambda i: stops[i](), checkpoint_dirs=dirs)
    assert all(r.stopped_early and [m.epoch for m in r.epochs] == [1] for r in stopped)
    assert [checkpoint.peek(d)["epoch"] for d in dirs] == [1, 1]

    reported = []
    resumed = train_packed(
        configs, on_epoch=lambda i, m: reported.append((i, m.epoch)), checkpoint_dirs=dirs
    )
    assert sorted(reported) == [(0, 2), (0, 3), (1, 2), (1, 3)]  # only the new epochs
    for a, b in zip(whole, resumed):
        assert b.resumed_from_epoch == 1 and not b.stopped_early
        assert exact(b.epochs) == exact(a.epochs)
        assert b.confusion_matrix == a.confusion_matrix


def test_member_and_plain_checkpoints_resume_across_pack_and_train(float64, tmp_path):
    configs = resume_configs()
    plain = [train(c) for c in configs]

    # A pack member stopped inside epoch 2 finishes under plain train.
    member_dir = tmp_path / "member"
    stop = stop_at_call(5)
    train_packed(
        configs, should_stop=lambda i: i == 0 and stop(), checkpoint_dirs=[member_dir, None]
    )
    assert checkpoint.peek(member_dir)["epoch"] == 1
    from_pack = train(configs[0], checkpoint_dir=member_dir)
    assert from_pack.resumed_from_epoch == 1
    assert_close_runs(from_pack, plain[0])

    # A plain run stopped inside epoch 2 finishes in a pack, beside a member at epoch 1.
    plain_dir = tmp_path / "plain"
    train(configs[1], should_stop=stop_at_call(5), checkpoint_dir=plain_dir)
    assert checkpoint.peek(plain_dir)["epoch"] == 1
    fresh, into_pack = train_packed(configs, checkpoint_dirs=[None, plain_dir])
    assert into_pack.resumed_from_epoch == 1 and fresh.resumed_from_epoch == 0
    assert_close_runs(into_pack, plain[1])
    assert_close_runs(fresh, plain[0])


def test_a_member_that_stops_leaves_while_the_others_finish(float64, tmp_path):
    configs = [TrainConfig(**{**RESUME, "augmentation": "none"}, seed=s) for s in (0, 1, 2)]
    whole = train_packed(configs)
    dirs = [tmp_path / str(i) for i in range(3)]
    stop_member_1 = stop_at_call(5)  # inside its epoch 2
    calls = [0, 0, 0]

    def should_stop(i: int) -> bool:
        calls[i] += 1
        return i == 1 and stop_member_1()

    results = train_packed(configs, should_stop=should_stop, checkpoint_dirs=dirs)
    assert [r.stopped_early for r in results] == [False, True, False]
    assert [len(r.epochs) for r in results] == [3, 1, 3]
    # Before every batch of a member in the pack and before each of its checkpoint writes,
    # as train.
    assert calls == [12, 5, 12]
    assert checkpoint.peek(dirs[1])["epoch"] == 1 and checkpoint.peek(dirs[0])["epoch"] == 3
    assert exact(results[1].epochs) == exact(whole[1].epochs[:1])
    # The others go on as in the whole pack. Repacked, they round differently: float64 keeps
    # that far below the tolerance, where in fp32 or bf16 it could move an accuracy.
    for i in (0, 2):
        assert_close_runs(results[i], whole[i])


def test_members_with_different_epochs_leave_when_done(tiny_config):
    small = dict(batch_size=32, train_limit=64, test_limit=30)
    configs = [tiny_config(epochs=1, seed=0, **small), tiny_config(epochs=3, seed=1, **small)]
    seen = []
    results = train_packed(configs, on_epoch=lambda i, m: seen.append((i, m.epoch)))
    assert seen == [(0, 1), (1, 1), (1, 2), (1, 3)]
    assert [len(r.epochs) for r in results] == [1, 3]
    assert [m.lr for m in results[1].epochs] == [0.1, 0.1, 0.001]


# In fp32 the pack's grouped kernels round differently from a plain run's, and training
# amplifies that: with ReLU or leaky ReLU, losses part by up to 1e-2 by the third or fourth
# step (thread count alone does as much to a plain run), while tanh and sigmoid stay within
# 1e-4 for five steps. So every member is compared over its first two
# steps (its own init, images, augmentation, activation and BatchNorm, then one update with
# its own lr), and the smooth members over five (momentum and lr schedule too).
FP32_STEPS = 5
FP32_MEMBERS = [
    dict(activation="relu", augmentation="none", seed=0, lr_ratio="2:1:1"),
    dict(
        activation="tanh", augmentation="crop_flip", seed=1, lr_ratio="1:1:1",
        lr=0.05, momentum=0.5, weight_decay=1e-3,
    ),
    dict(
        activation="leaky_relu", leaky_relu_slope=0.2, augmentation="crop_flip_blur_color",
        seed=2, lr_ratio="5:3:2", momentum=0.0,
    ),
    dict(
        activation="sigmoid", augmentation="crop_flip_blur_color", seed=3, lr_ratio="5:4:1",
        momentum=0.0,
    ),
    dict(activation="tanh", augmentation="none", seed=4),
]  # fmt: skip
SMOOTH = ("tanh", "sigmoid")
# Rounding alone, 1 and 2 threads, 4 sets of seeds: at most 4e-5 (tanh, step 5). A member
# given another's weights, activation, augmentation, lr or momentum, or BatchNorm statistics
# pooled over members, is off by 1e-2 or more; another's BatchNorm affine by 4e-3. A weight
# decay mix-up (1e-4) is below what fp32 can tell: the float64 test above catches it.
STEP_RTOL = 1e-3


def step_losses(result) -> list[float]:
    """The losses of a one-step-per-epoch run's SGD steps, in order."""
    return [m.train_loss for m in result.epochs]


def test_packed_members_take_the_first_fp32_steps_of_their_separate_runs():
    configs = [TrainConfig(**{**ONE_STEP_EPOCHS, **m, "epochs": FP32_STEPS}) for m in FP32_MEMBERS]
    plain = [step_losses(train(c)) for c in configs]
    packed = [step_losses(r) for r in train_packed(configs)]
    for config, mine, theirs in zip(configs, packed, plain):
        steps = FP32_STEPS if config.activation in SMOOTH else 2
        assert len(mine) == len(theirs) == FP32_STEPS
        assert mine[:steps] == pytest.approx(theirs[:steps], rel=STEP_RTOL, abs=0), (
            config.activation, config.seed, mine, theirs,
        )  # fmt: skip


def test_pack_key_rejects_configs_that_cannot_share_a_pack(tiny_config):
    a, b = tiny_config(), tiny_config(width=8, batch_size=32, seed=5, activation="tanh")
    assert pack_key(a) != pack_key(b)
    assert pack_key(a) == pack_key(tiny_config(seed=5, lr=0.3, activation="tanh", epochs=9))
    with pytest.raises(ValueError, match=r"width \(4 vs 8\), batch_size \(64 vs 32\)"):
        train_packed([a, b])
    with pytest.raises(ValueError, match="at least one config"):
        train_packed([])
    with pytest.raises(ValueError, match="share a checkpoint directory"):
        train_packed([a, a], checkpoint_dirs=["same", "same"])


def test_progress_bars_go_to_stderr(tiny_config, capsys):
    small = dict(epochs=1, train_limit=64, test_limit=30)
    train_packed([tiny_config(**small), tiny_config(**small, seed=1)], progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "epochs" in captured.err
