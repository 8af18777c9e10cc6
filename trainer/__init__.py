"""ResNet18 experiments of the study, as a plain PyTorch library.

`from trainer import TrainConfig` stays torch-free; `trainer.train` imports torch on first use.
"""

from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult

__all__ = ["EpochMetrics", "RunResult", "TrainConfig", "train"]


def __getattr__(name: str):
    # Lazy so that web processes importing the config never load torch.
    if name == "train":
        from trainer.loop import train

        return train
    raise AttributeError(name)
