import pytest
from pydantic import ValidationError

from trainer.config import TrainConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "imagenet"),
        ("activation", "gelu"),
        ("lr_ratio", "2:1"),
        ("lr_ratio", "0:1:1"),
        ("lr_ratio", "a:b:c"),
        ("augmentation", "mixup"),
        ("epochs", 0),
        ("batch_size", -1),
        ("lr", 0),
        ("momentum", 1.0),
        ("width", 0),
        ("leaky_relu_slope", 0),
        ("blur_prob", 1.5),
        ("jitter_hue", 0.9),
        ("precision", "fp8"),
        ("train_limit", -5),
    ],
)
def test_bad_value_is_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        TrainConfig(**{field: value})
    assert [e["loc"] for e in info.value.errors()] == [(field,)]
    assert field in str(info.value)


def test_unknown_field_is_refused():
    with pytest.raises(ValidationError, match="activaton"):
        TrainConfig(activaton="relu")


def test_blur_range_must_not_be_inverted():
    with pytest.raises(ValidationError) as info:
        TrainConfig(blur_sigma_min=2.0, blur_sigma_max=1.0)
    assert [e["loc"] for e in info.value.errors()] == [("blur_sigma_max",)]


def test_defaults_are_the_notebooks():
    c = TrainConfig()
    assert (c.dataset, c.activation, c.lr_ratio, c.augmentation) == (
        "cifar10", "relu", "2:1:1", "crop_flip",
    )  # fmt: skip
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (200, 128, 0.1, 0.9, 2e-4)
    assert (c.width, c.seed, c.normalize) == (64, 0, False)


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, trainer.config, trainer.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
