"""Datasets as whole uint8 tensors: images N x 3 x 32 x 32, labels int64, class names.

The loop moves these tensors to the training device once and augments batches there, so
nothing here is on the hot path and no DataLoader workers are needed.

Where files are looked for: the `data_dir` argument, else the DATA_DIR environment
variable, else ~/.resnet-lab/data.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGITS_TEST_SIZE = 360  # of sklearn's 1797 digits; the other 1437 train


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing or unreadable; the message says what to do."""


@dataclass(frozen=True)
class ImageData:
    train_images: torch.Tensor  # uint8, N x 3 x 32 x 32
    train_labels: torch.Tensor  # int64, N
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    def limited(self, train_limit: int = 0, test_limit: int = 0) -> ImageData:
        """The first train_limit / test_limit images (0 keeps all), for smoke runs."""
        tr = slice(None, train_limit or None)
        te = slice(None, test_limit or None)
        return ImageData(
            self.train_images[tr],
            self.train_labels[tr],
            self.test_images[te],
            self.test_labels[te],
            self.classes,
        )


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"]).expanduser()
    return Path.home() / ".resnet-lab" / "data"


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    train_limit: int = 0,
    test_limit: int = 0,
    download: bool = True,
) -> ImageData:
    """Load one of the config's datasets; raises DatasetUnavailable with a readable message."""
    root = resolve_data_dir(data_dir)
    if name == "cifar10":
        data = load_cifar10(root, download=download)
    elif name == "fashion_mnist":
        data = load_fashion_mnist(root)
    elif name == "digits":
        data = load_digits()
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return data.limited(train_limit, test_limit)


# --- CIFAR-10 -----------------------------------------------------------------------------


def load_cifar10(root: Path, *, download: bool = True) -> ImageData:
    """CIFAR-10 from root/cifar-10-batches-py, extracting or downloading the tarball first.

    The batches are read here with pickle (the same reading torchvision does) rather than
    through torchvision.datasets.CIFAR10, whose md5 check accepts only the official files
    byte for byte. The download itself goes through torchvision, md5 check included.
    """
    folder = root / CIFAR_FOLDER
    if not _cifar_folder_complete(folder):
        _fetch_cifar10(root, download)
    train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test = _read_cifar_batch(folder / "test_batch")
    try:
        with open(folder / "batches.meta", "rb") as f:
            classes = list(pickle.load(f, encoding="latin1")["label_names"])
    except (OSError, pickle.UnpicklingError, KeyError, EOFError) as exc:
        raise DatasetUnavailable(f"cannot read {folder / 'batches.meta'}: {exc}") from exc
    return ImageData(
        torch.cat([x for x, _ in train]),
        torch.cat([y for _, y in train]),
        test[0],
        test[1],
        classes,
    )


def _cifar_folder_complete(folder: Path) -> bool:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return all((folder / n).is_file() for n in names)


def _fetch_cifar10(root: Path, download: bool) -> None:
    """Make root/cifar-10-batches-py exist: extract a present tarball, else download it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetUnavailable(f"cannot create data directory {root}: {exc}") from exc
    # One lock per data dir: two workers on one host must not download or extract at once.
    with FileLock(str(root / ".cifar10.lock")):
        if _cifar_folder_complete(root / CIFAR_FOLDER):
            return  # another process finished while we waited
        tarball = root / CIFAR_TARBALL
        if not tarball.is_file() and download:
            _download_cifar10(root)
        if not tarball.is_file():
            raise DatasetUnavailable(_cifar_missing_message(root))
        _extract_cifar10(tarball, root)


def _download_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_url

    try:
        download_url(CIFAR10.url, str(root), CIFAR10.filename, CIFAR10.tgz_md5)
    except Exception as exc:  # offline, proxy, md5 mismatch: all end in the same advice
        (root / CIFAR_TARBALL).unlink(missing_ok=True)
        raise DatasetUnavailable(
            f"could not download CIFAR-10 ({exc}).\n" + _cifar_missing_message(root)
        ) from exc


def _extract_cifar10(tarball: Path, root: Path) -> None:
    # Extract into a temporary folder beside the target and rename, so a crash mid-way never
    # leaves a half-filled cifar-10-batches-py behind.
    tmp = Path(tempfile.mkdtemp(prefix=".cifar-extract-", dir=root))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # refuses absolute paths and links out
            else:  # Python without extraction filters (before 3.10.12 / 3.11.4)
                tar.extractall(tmp)
        extracted = tmp / CIFAR_FOLDER
        if not _cifar_folder_complete(extracted):
            raise DatasetUnavailable(f"{tarball} does not hold a complete {CIFAR_FOLDER}/ folder")
        target = root / CIFAR_FOLDER
        if target.exists():
            shutil.rmtree(target)  # an incomplete leftover
        os.replace(extracted, target)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DatasetUnavailable(f"cannot extract {tarball}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_missing_message(root: Path) -> str:
    return (
        f"CIFAR-10 not found and not downloadable. Put {CIFAR_TARBALL} "
        f"(from https://www.cs.toronto.edu/~kriz/cifar.html) at {root / CIFAR_TARBALL}, "
        f"or its extracted folder at {root / CIFAR_FOLDER}/, "
        "or point DATA_DIR (or --data-dir) at the directory that holds either."
    )


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry["labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, ValueError) as exc:
        raise DatasetUnavailable(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    # CIFAR stores rows as 1024 red, 1024 green, 1024 blue values: already N x 3 x 32 x 32.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


# --- Fashion-MNIST ------------------------------------------------------------------------

_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_fashion_mnist(root: Path) -> ImageData:
    """Fashion-MNIST IDX files (plain or .gz), padded 28 -> 32 and repeated to 3 channels.

    Looked for in root/fashion-mnist, then root, then Debian's dataset-fashion-mnist folder.
    """
    candidates = [root / "fashion-mnist", root, FASHION_MNIST_SYSTEM_DIR]
    for folder in candidates:
        paths = {key: _find_idx(folder, name) for key, name in _FASHION_FILES.items()}
        if all(paths.values()):
            break
    else:
        raise DatasetUnavailable(
            "Fashion-MNIST IDX files not found. Put train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            f"(plain or .gz) in one of: {', '.join(str(c) for c in candidates)} "
            "(Debian/Ubuntu: apt install dataset-fashion-mnist)."
        )
    arrays = {key: _read_idx(path) for key, path in paths.items()}
    return ImageData(
        _gray28_to_rgb32(arrays["train_images"]),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        _gray28_to_rgb32(arrays["test_images"]),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        list(FASHION_MNIST_CLASSES),
    )


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file: 2 zero bytes, a type byte (0x08 = uint8), ndim, big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(shape)
    except (OSError, EOFError, struct.error, ValueError) as exc:
        raise DatasetUnavailable(f"cannot read IDX file {path}: {exc}") from exc


def _gray28_to_rgb32(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # N x 1 x 28 x 28
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))  # zero border, like the images' own
    return x.expand(-1, 3, -1, -1).contiguous()


# --- scikit-learn digits ------------------------------------------------------------------


def load_digits() -> ImageData:
    """sklearn's 1797 8x8 digits, bilinearly upscaled to 32x32x3, fixed split 1437/360.

    Bundled with scikit-learn, so it needs no download: the dataset of smoke runs and tests.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0  # values 0..16
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(bunch.target.astype(np.int64))
    # A fixed seed and stratification: every run of every config sees the same split.
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, random_state=0, stratify=bunch.target
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return ImageData(
        x[train_idx], y[train_idx], x[test_idx], y[test_idx], [str(i) for i in range(10)]
    )
