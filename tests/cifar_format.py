"""CIFAR-10's own files with random images: for tests and for timing a real epoch where the
real dataset cannot be downloaded (an offline GPU machine). Not for training anything."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from trainer.data import CIFAR_FOLDER

CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def random_rows(n: int, seed: int) -> np.ndarray:
    """n CIFAR rows (1024 red, 1024 green, 1024 blue values), uint8."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10_folder(root: Path, per_batch: int = 10_000, test: int = 10_000) -> dict:
    """root/cifar-10-batches-py/ in CIFAR-10's pickle format: 5 training batches of
    `per_batch` images and a test batch; returns what was written."""
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True)
    train_rows, train_labels = [], []
    for i in range(1, 6):
        rows = random_rows(per_batch, seed=i)
        labels = [(i + j) % 10 for j in range(per_batch)]
        entry = {"batch_label": f"training batch {i} of 5", "data": rows, "labels": labels}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(entry, protocol=2))
        train_rows.append(rows)
        train_labels += labels
    test_rows = random_rows(test, seed=99)
    test_labels = [j % 10 for j in range(test)]
    entry = {"batch_label": "testing batch 1 of 1", "data": test_rows, "labels": test_labels}
    (folder / "test_batch").write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {
        "train_rows": np.concatenate(train_rows),
        "train_labels": train_labels,
        "test_rows": test_rows,
        "test_labels": test_labels,
    }
