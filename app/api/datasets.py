"""/api/datasets: whether each dataset is ready where the workers train, before anyone
submits a run that would fail on it or stall on a download.

Two kinds of evidence: the files in DATA_DIR as this process sees it (the workers' own when
they share the folder, as `resnet-lab serve` and docker-compose do), and runs of the dataset
that finished an epoch (their worker loaded it). Where files are looked for follows
trainer/data.py, which this module must not import: it pulls in torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select

from app.api.deps import SessionDep, SettingsDep
from core.db import Run

router = APIRouter(prefix="/api", tags=["datasets"])

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


class DatasetOut(BaseModel):
    dataset: str
    state: Literal["ready", "download", "missing"]
    detail: str
    trained_by: list[str]


def _cifar(root: Path) -> tuple[str, str]:
    if all((root / CIFAR_FOLDER / name).is_file() for name in CIFAR_FILES):
        return "ready", f"in {root / CIFAR_FOLDER}"
    if (root / CIFAR_TARBALL).is_file():
        return "ready", f"{root / CIFAR_TARBALL} is extracted on first use"
    return "download", "downloaded on first use (about 170 MB) into DATA_DIR"


def _fashion(root: Path) -> tuple[str, str]:
    for folder in (root / "fashion-mnist", root, FASHION_SYSTEM_DIR):
        if all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in FASHION_FILES):
            return "ready", f"in {folder}"
    return (
        "missing",
        "not downloadable: install Debian's dataset-fashion-mnist or put the four IDX files "
        "in DATA_DIR/fashion-mnist",
    )


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(session: SessionDep, settings: SettingsDep):
    """Each dataset: `ready`, `download` (fetched on first use) or `missing` (a run fails),
    with where it was found, and the workers that already trained on it."""
    root = settings.resolved_data_dir
    trained: dict[str, list[str]] = {}
    rows = session.execute(
        select(Run.dataset, Run.worker)
        .where(Run.epochs_done > 0, Run.worker.is_not(None))
        .group_by(Run.dataset, Run.worker)
        .order_by(func.max(Run.id).desc())
    )
    for dataset, worker in rows:
        trained.setdefault(dataset, []).append(worker)
    found = {
        "cifar10": _cifar(root),
        "fashion_mnist": _fashion(root),
        "digits": ("ready", "bundled with scikit-learn"),
    }
    out = []
    for dataset, (state, detail) in found.items():
        workers = trained.get(dataset, [])[:5]
        if workers and state != "ready":
            state, detail = "ready", f"loaded by {', '.join(workers)}"
        out.append({"dataset": dataset, "state": state, "detail": detail, "trained_by": workers})
    return out
