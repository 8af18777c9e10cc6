"""One SGD step on a prepared batch: the hot path, shared by the loop and the benchmark.

Kept apart from loop.py so that bench/trainer_speed.py times exactly this code, and can
import it on machines without pydantic (this module needs torch alone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainer.precision import Runtime


def train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under the runtime's autocast, backward, step; returns (loss, logits) detached.

    Both stay on the device: callers accumulate them there, so no step waits for the GPU.
    """
    with runtime.autocast():
        logits = forward(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def make_sgd(params, config, runtime: Runtime) -> torch.optim.SGD:
    """The run's optimizer (trainer.loop and each packed member build it here, so their
    checkpoints are interchangeable). `config` needs lr, momentum and weight_decay."""
    # One fused kernel for the whole update on CUDA instead of one per parameter tensor.
    fused = {"fused": True} if runtime.device.type == "cuda" else {}
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, **fused
    )
