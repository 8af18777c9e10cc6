import threading

import numpy as np
import pytest
import torch

from trainer.data import DatasetUnavailable, load_dataset, resolve_data_dir

from .conftest import CIFAR_CLASSES


def assert_cifar_matches(data, expected):
    assert data.train_images.dtype == torch.uint8
    assert data.train_images.shape == (20, 3, 32, 32)
    assert data.test_images.shape == (6, 3, 32, 32)
    # A CIFAR row is the red plane, then green, then blue, each row-major.
    rows = expected["train_rows"]
    assert torch.equal(data.train_images, torch.from_numpy(rows.reshape(-1, 3, 32, 32)))
    assert data.train_images[0, 1, 0, 0].item() == rows[0, 1024]
    assert data.train_images[0, 2, 31, 31].item() == rows[0, 3071]
    assert data.train_labels.tolist() == expected["train_labels"]
    assert data.test_labels.tolist() == expected["test_labels"]
    assert data.train_labels.dtype == torch.int64
    assert data.classes == CIFAR_CLASSES


def test_cifar_loader_reads_the_extracted_batches_folder(cifar_folder):
    data_dir, expected = cifar_folder
    assert_cifar_matches(load_dataset("cifar10", data_dir, download=False), expected)


def test_cifar_loader_extracts_the_tarball_once(cifar_tarball):
    data_dir, expected = cifar_tarball
    assert_cifar_matches(load_dataset("cifar10", data_dir, download=False), expected)
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()
    (data_dir / "cifar-10-python.tar.gz").unlink()  # now the folder alone is enough
    assert_cifar_matches(load_dataset("cifar10", data_dir, download=False), expected)
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".cifar-extract")]


def test_concurrent_loaders_share_one_extraction(cifar_tarball):
    data_dir, expected = cifar_tarball
    results, errors = [], []

    def load():
        try:
            results.append(load_dataset("cifar10", data_dir, download=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for data in results:
        assert_cifar_matches(data, expected)


def test_missing_cifar_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "DATA_DIR" in message


def test_truncated_cifar_batch_is_a_readable_error(cifar_folder):
    data_dir, _ = cifar_folder
    batch = data_dir / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetUnavailable, match="data_batch_3"):
        load_dataset("cifar10", data_dir, download=False)


def test_limits_keep_the_first_images(cifar_folder):
    data_dir, expected = cifar_folder
    data = load_dataset("cifar10", data_dir, train_limit=7, test_limit=2, download=False)
    assert len(data.train_images) == len(data.train_labels) == 7
    assert len(data.test_images) == 2
    assert data.train_labels.tolist() == expected["train_labels"][:7]


def test_fashion_mnist_loader_pads_to_32_and_repeats_three_channels(fashion_dir):
    data_dir, arrays = fashion_dir
    data = load_dataset("fashion_mnist", data_dir)
    train = torch.from_numpy(arrays["train-images-idx3-ubyte"])
    assert data.train_images.shape == (7, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (5, 3, 32, 32)
    for c in range(3):
        assert torch.equal(data.train_images[:, c, 2:30, 2:30], train)
    border = data.train_images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.sum() == 0
    assert data.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10


def test_fashion_mnist_files_directly_in_data_dir_are_found(fashion_dir):
    data_dir, arrays = fashion_dir
    for path in (data_dir / "fashion-mnist").iterdir():
        path.rename(data_dir / path.name)
    assert len(load_dataset("fashion_mnist", data_dir).test_images) == 5


def test_fashion_mnist_rejects_a_file_that_is_not_idx(fashion_dir):
    data_dir, _ = fashion_dir
    (data_dir / "fashion-mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02garbage")
    with pytest.raises(DatasetUnavailable, match="t10k-labels"):
        load_dataset("fashion_mnist", data_dir)


def test_digits_are_32x32_rgb_with_a_fixed_split():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert a.train_images.shape == (1437, 3, 32, 32) and a.test_images.shape == (360, 3, 32, 32)
    assert a.train_images.dtype == torch.uint8 and a.train_images.max() > 200
    assert torch.equal(a.test_labels, b.test_labels) and torch.equal(a.test_images, b.test_images)
    assert torch.equal(a.train_images[:, 0], a.train_images[:, 2])
    assert np.bincount(a.test_labels.numpy()).min() >= 35  # stratified: every digit tested


def test_data_dir_comes_from_argument_then_env_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("DATA_DIR")
    assert resolve_data_dir().name == "data" and resolve_data_dir().parent.name == ".resnet-lab"
