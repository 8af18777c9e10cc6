"""ResNet18 experiments of the study, as a plain PyTorch library.

`from trainer import TrainConfig` stays torch-free; `trainer.train` imports torch on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.loop import train
    from trainer.results import EpochMetrics, RunResult

__all__ = ["EpochMetrics", "RunResult", "TrainConfig", "train"]

# Every name is lazy, in both directions: web processes importing the config never load
# torch, and trainer.model / trainer.augment import without pydantic (the GPU machines of
# bench/gpu_check.sh have torch but no pydantic).
_HOMES = {
    "TrainConfig": "trainer.config",
    "EpochMetrics": "trainer.results",
    "RunResult": "trainer.results",
    "train": "trainer.loop",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
