"""A plain Adam optimiser for bound parameters (alpha slopes, beta multipliers).

Why not ``torch.optim.Adam``: its first ``step()`` imports ``torch._dynamo`` (and sympy), which
costs 1.5-4 s per process.  Every ``genbab verify`` is a fresh process measured start-up
included, so that import alone was a third of the wall time of an easy instance.  This is the
same update rule (Kingma & Ba 2015, no weight decay, no amsgrad) in a few lines.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class Adam:
    """``Adam(params, lr).step()`` after ``loss.backward()``; ``decay_lr(gamma)`` multiplies the
    learning rate (what ``ExponentialLR.step()`` did)."""

    def __init__(self, params: Iterable[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        c1 = 1.0 - self.beta1 ** self.steps
        c2 = 1.0 - self.beta2 ** self.steps
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(self.beta1).add_(p.grad, alpha=1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1.0 - self.beta2)
            denom = (v / c2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / c1)

    def decay_lr(self, gamma: float) -> None:
        self.lr *= gamma
