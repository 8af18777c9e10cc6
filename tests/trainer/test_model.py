import pytest
import torch
from torch import nn

from trainer.config import TrainConfig
from trainer.model import BasicBlock, ResNet18, build_model

ACTIVATION_TYPES = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# After the stem, inside each of the 8 blocks, and after each of the 8 residual adds.
ACTIVATION_SITES = 1 + 8 + 8


@pytest.mark.parametrize("activation", list(ACTIVATION_TYPES))
def test_chosen_activation_is_at_every_site_and_no_relu_remains(activation):
    model = build_model(TrainConfig(activation=activation, width=4), num_classes=10)
    kind = ACTIVATION_TYPES[activation]
    sites = [m for m in model.modules() if isinstance(m, kind)]
    assert len(sites) == ACTIVATION_SITES
    assert len({id(m) for m in sites}) == ACTIVATION_SITES  # one instance per site
    other = tuple(t for name, t in ACTIVATION_TYPES.items() if name != activation)
    assert not [m for m in model.modules() if isinstance(m, other)]


@pytest.mark.parametrize("activation", list(ACTIVATION_TYPES))
def test_every_activation_site_runs_in_the_forward_pass(activation):
    model = build_model(TrainConfig(activation=activation, width=4), num_classes=10)
    calls = []
    for m in model.modules():
        if isinstance(m, ACTIVATION_TYPES[activation]):
            m.register_forward_hook(lambda *_: calls.append(1))
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert len(calls) == ACTIVATION_SITES


def test_activation_follows_the_residual_add():
    block = BasicBlock(4, 4, 1, nn.Sigmoid)
    out = block(torch.randn(2, 4, 8, 8) * 100)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid was the last operation


def test_leaky_relu_uses_the_configured_slope():
    model = build_model(TrainConfig(activation="leaky_relu", leaky_relu_slope=0.2, width=4), 10)
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}


def test_full_width_model_is_the_notebooks_cifar_resnet18():
    model = ResNet18(num_classes=10, width=64)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    stem_conv = model.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert not [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    widths = [stage[0].conv1.out_channels for stage in model.stages]
    assert widths == [64, 128, 256, 512]
    assert [len(stage) for stage in model.stages] == [2, 2, 2, 2]
