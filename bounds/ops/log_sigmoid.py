"""LogSigmoid ``log(sigmoid(x)) = -softplus(-x)``: not an ONNX op, the bound-time rewrite fuses
``Log(Sigmoid(x))`` into it.  Concave and increasing everywhere (``f'' = -sigmoid(x)
sigmoid(-x) < 0``, no inflection point); ``f' = sigmoid(-x)`` is strictly decreasing from 1
to 0, so ``f'(x) = a`` has exactly one root ``x = -logit(a)`` for 0 < a < 1 and none
otherwise: complete, in closed form.  Evaluated as ``-logaddexp(-x, 0)``, accurate in both
tails (``x - exp(x)`` far left, ``-exp(-x)`` far right)."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule


def log_sigmoid(x: Tensor) -> Tensor:
    return -torch.logaddexp(-x, torch.zeros_like(x))


def _slope(x: Tensor) -> Tensor:
    return torch.sigmoid(-x)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (-torch.logit(a.clamp(1e-300, 1 - 1e-16)),)


LOG_SIGMOID_CURVE = Curve(value=log_sigmoid, slope=_slope, stationary=_stationary)
LOG_SIGMOID = tangent_rule("LogSigmoid", LOG_SIGMOID_CURVE, log_sigmoid)
