"""The study's step schedule: lr, lr/10, lr/100 in phases whose lengths follow lr_ratio.

A plain function of the epoch rather than a torch scheduler: the lr of an epoch depends on
nothing but (epoch, epochs, ratio, lr), so a resumed run cannot drift from an uninterrupted
one. The lr in use is also in the optimizer's state_dict, which the checkpoint keeps.
"""

from __future__ import annotations

import torch


def phase_boundaries(epochs: int, ratio: tuple[int, int, int]) -> tuple[int, int]:
    """Last epoch at lr (b1) and last epoch at lr/10 (b2) for `epochs` epochs.

    Each boundary is epochs * (cumulative ratio) / (sum of ratio), rounded half up, computed
    in integers so that no float error can move a switch: b = (2*E*cum + total) // (2*total).
    At 200 epochs: 2:1:1 -> (100, 150), 5:3:2 -> (100, 160), 5:4:1 -> (100, 180).
    Epochs 1..b1 run at lr, b1+1..b2 at lr/10, b2+1..E at lr/100. At tiny epoch counts a
    phase can be empty: 2:1:1 over 1 epoch gives (1, 1), i.e. the only epoch runs at lr;
    over 3 epochs it gives (2, 2) (3*2/4 = 1.5 rounds up to 2), so lr/10 is skipped.
    """
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    a, b, c = ratio
    total = a + b + c
    b1 = (2 * epochs * a + total) // (2 * total)
    b2 = (2 * epochs * (a + b) + total) // (2 * total)
    return b1, b2


def lr_at_epoch(epoch: int, epochs: int, ratio: tuple[int, int, int], lr: float) -> float:
    """Learning rate of 1-based `epoch`: lr divided by 10 once per boundary already passed."""
    k = sum(1 for boundary in phase_boundaries(epochs, ratio) if boundary < epoch)
    # Division by an exact power of ten keeps 0.1 -> 0.01 -> 0.001 exact in print.
    return lr / 10**k


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
