"""The hot path of a pack: its batch, its step, and SGD with per-member hyperparameters.

Shared by trainer.packed and bench/pack_speed.py, which therefore times exactly this code;
torch only (no pydantic), like trainer.step.

PackedSGD has each member's own lr, momentum and weight decay, and the update of
torch.optim.SGD (dampening 0, nesterov off) for every member k:

    g = grad + weight_decay_k * p;  buf = momentum_k * buf + g;  p = p - lr_k * buf

where torch starts buf at the first g: here it starts at zero, and momentum_k * 0 + g == g
exactly. All of it is in place, in torch's own order (grad.add_(p, alpha=wd), buf.mul_(m)
.add_(grad), p.add_(buf, alpha=-lr)): no parameter-sized temporaries. Members sharing a value
share one multi-tensor (_foreach) call, on views of their consecutive blocks along dim 0 (the
whole tensors when all members agree, the usual case for momentum and weight decay): a
handful of fused launches per step, and no host sync (the scalars are Python floats, passed
as kernel arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from trainer.augment import augment
from trainer.precision import Runtime

# Members sharing a value: their (first, end) ranges of consecutive members.
_Spans = list[tuple[int, int]]


class PackedSGD:
    """SGD over the parameters of a packed model (member k = block k along dim 0)."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        members: int,
        *,
        lr: Sequence[float],
        momentum: Sequence[float],
        weight_decay: Sequence[float],
    ) -> None:
        self.params = list(params)
        self.members = members
        self.momentum = list(momentum)
        self.weight_decay = list(weight_decay)
        self.buffers = [torch.zeros_like(p) for p in self.params]
        # Which members' buffers hold a real history (torch's SGD state has a buffer).
        self.started = [False] * members
        self._p = [p.detach() for p in self.params]
        self._decay = [(v, spans) for v, spans in _by_value(self.weight_decay) if v != 0]
        self._momentum = [
            (self._views(self.buffers, spans), v) for v, spans in _by_value(self.momentum)
        ]
        self.set_lr(lr)

    def _views(self, tensors: Sequence[torch.Tensor], spans: _Spans) -> list[torch.Tensor]:
        """Each tensor's blocks of the members in spans (one view per span)."""
        k = self.members
        views = []
        for t in tensors:
            n = t.shape[0] // k
            views += [t if b - a == k else t.narrow(0, a * n, (b - a) * n) for a, b in spans]
        return views

    def set_lr(self, lr: Sequence[float]) -> None:
        self.lr = list(lr)
        self._steps = [
            (self._views(self._p, spans), self._views(self.buffers, spans), -v)
            for v, spans in _by_value(self.lr)
        ]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        for wd, spans in self._decay:  # grad + wd * p, as torch.optim.SGD
            torch._foreach_add_(self._views(grads, spans), self._views(self._p, spans), alpha=wd)
        for buffers, momentum in self._momentum:
            torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(self.buffers, grads)
        for params, buffers, neg_lr in self._steps:
            torch._foreach_add_(params, buffers, alpha=neg_lr)
        self.started = [True] * self.members

    @torch.no_grad()
    def load_buffer(self, index: int, k: int, buffer: torch.Tensor) -> None:
        """Set member k's momentum buffer of parameter `index` (a member-shaped tensor)."""
        block = self.buffers[index].chunk(self.members)[k]
        block.copy_(buffer.view(block.shape))
        self.started[k] = True

    def member_buffers(self, k: int) -> list[torch.Tensor] | None:
        """Member k's momentum buffers (packed block shape), or None where torch has none."""
        if not self.started[k] or self.momentum[k] == 0:
            return None  # torch.optim.SGD keeps no buffer before a step or without momentum
        return [b.chunk(self.members)[k] for b in self.buffers]


def packed_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    orders: Sequence[torch.Tensor],
    start: int,
    size: int,
    configs: Sequence,
    generators: Sequence[torch.Generator],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    memory_format: torch.memory_format,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's batch as trainer.loop gathers it, side by side: (B x 3K x H x W, B x K).

    Member k takes images orders[k][start : start + size], augmented per its configs[k]
    (anything with TrainConfig's augmentation fields) with its own generators[k].
    """
    xs, ys = [], []
    for order, config, generator in zip(orders, configs, generators):
        idx = order[start : start + size]
        xs.append(normalize(augment(images[idx], config, generator)))
        ys.append(labels[idx])
    return torch.cat(xs, dim=1).contiguous(memory_format=memory_format), torch.stack(ys, dim=1)


def packed_train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: PackedSGD,
    runtime: Runtime,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """trainer.step.train_step for a pack: x is B x 3K x H x W, y is B x K.

    Returns (losses K, logits B x K x classes), detached and on the device. The loss that is
    differentiated is the sum of the members' mean losses, so member k's gradient is that of
    its own loss alone.
    """
    with runtime.autocast():
        logits = forward(x)
        losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)
    optimizer.zero_grad()
    losses.sum().backward()
    optimizer.step()
    return losses.detach(), logits.detach()


def _by_value(values: Sequence[float]) -> list[tuple[float, _Spans]]:
    """Each distinct value with the ranges of consecutive members that have it."""
    groups: dict[float, _Spans] = {}
    for k, value in enumerate(float(v) for v in values):
        spans = groups.setdefault(value, [])
        if spans and spans[-1][1] == k:
            spans[-1] = (spans[-1][0], k + 1)
        else:
            spans.append((k, k + 1))
    return list(groups.items())
