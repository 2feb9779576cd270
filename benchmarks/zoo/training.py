"""Seeded training (normal or PGD adversarial) and the PGD attack used to pick properties."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.zoo.data import Dataset

DATA_LOWER, DATA_UPPER = 0.0, 1.0    # both data sets live in [0, 1]


@dataclass(frozen=True)
class TrainConfig:
    """Adam on minibatches; ``adversarial_radius`` > 0 trains on PGD examples of that L-inf
    radius (``pgd_steps`` steps) instead of the clean ones."""
    epochs: int
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    adversarial_radius: float = 0.0
    pgd_steps: int = 5


def pgd_attack(model: nn.Module, x: Tensor, labels: Tensor, radius: float, steps: int,
               restarts: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Untargeted L-inf PGD on the margin loss in the ball of ``radius`` around ``x`` clipped
    to the data range (``x``: (batch, *shape); result: the same shape)."""
    lower = (x - radius).clamp(DATA_LOWER, DATA_UPPER)
    upper = (x + radius).clamp(DATA_LOWER, DATA_UPPER)
    return pgd_in_box(model, lower, upper, labels, steps, restarts, generator)


def pgd_in_box(model: nn.Module, lower: Tensor, upper: Tensor, labels: Tensor, steps: int,
               restarts: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Sign-gradient descent on the margin inside ``[lower, upper]``, the first run from the
    box centre and further ones from uniform random points.  Returns, per sample, the point
    with the lowest margin found."""
    step = 1.25 * (upper - lower) / max(steps, 1)
    best = (lower + upper) / 2
    best_margin = margins(model, best, labels).detach()
    for restart in range(restarts):
        noise = torch.rand(lower.shape, generator=generator) if restart else 0.5
        point = lower + noise * (upper - lower)
        for _ in range(steps):
            point.requires_grad_(True)
            (grad,) = torch.autograd.grad(margins(model, point, labels).sum(), point)
            point = torch.min(torch.max(point.detach() - step * grad.sign(), lower), upper)
        margin = margins(model, point, labels).detach()
        better = margin < best_margin
        best[better], best_margin[better] = point[better], margin[better]
    return best


def margins(model: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
    """(batch,): true-class logit minus the best other logit (<= 0 means misclassified)."""
    logits = model(x)
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def train(model: nn.Module, data: Dataset, config: TrainConfig, seed: int) -> nn.Module:
    """Train ``model`` in place on ``data``'s training set; returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = data.x_train.shape[0]
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        radius = _ramped_radius(config, epoch)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            x, labels = data.x_train[batch], data.y_train[batch]
            if radius > 0:
                model.eval()
                x = pgd_attack(model, x, labels, radius, config.pgd_steps, restarts=1)
                model.train()
            optimiser.zero_grad()
            loss_fn(model(x), labels).backward()
            optimiser.step()
    return model.eval()


def _ramped_radius(config: TrainConfig, epoch: int) -> float:
    """The adversarial radius grows linearly over the first third of the epochs (training at
    the full radius from the start leaves the small sigmoid nets at chance)."""
    ramp = max(1, config.epochs // 3)
    return config.adversarial_radius * min(1.0, (epoch + 1) / ramp)


def accuracy(model: nn.Module, x: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == labels).float().mean())
