"""Fixtures of the trainer tests: tiny configs and dataset files in their native formats."""

from __future__ import annotations

import gzip
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.cifar_format import CLASSES, write_cifar10_folder
from trainer.config import TrainConfig

CIFAR_CLASSES = CLASSES

# The trainer's tiny config (tests/conftest.py TINY is the service's submission): digits at
# width 4 runs an epoch in well under a second.
TINY_TRAIN = dict(
    dataset="digits",
    width=4,
    epochs=3,
    batch_size=64,
    train_limit=256,
    test_limit=100,
    augmentation="none",
)


@pytest.fixture
def tiny_config():
    """Factory: TrainConfig for a second-long run, with any field overridden."""

    def make(**overrides) -> TrainConfig:
        return TrainConfig(**{**TINY_TRAIN, **overrides})

    return make


def write_cifar_folder(root: Path, per_batch: int = 4, test: int = 6) -> dict:
    """A few images in CIFAR-10's own pickle format under root/cifar-10-batches-py/."""
    return write_cifar10_folder(root, per_batch=per_batch, test=test)


@pytest.fixture
def cifar_folder(tmp_path: Path):
    """(data_dir, expected arrays) with the extracted CIFAR-10 folder in data_dir."""
    return tmp_path, write_cifar_folder(tmp_path)


@pytest.fixture
def cifar_tarball(tmp_path: Path):
    """(data_dir, expected arrays) with only cifar-10-python.tar.gz in data_dir."""
    staging = tmp_path / "staging"
    expected = write_cifar_folder(staging)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return data_dir, expected


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)


@pytest.fixture
def fashion_dir(tmp_path: Path):
    """(data_dir, expected arrays): Fashion-MNIST IDX files in data_dir/fashion-mnist,
    training files gzipped and test files plain, as both forms occur."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(7, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(5, dtype=np.uint8) + 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, compress=name.startswith("train"))
    return tmp_path, arrays
