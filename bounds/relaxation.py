"""The records every nonlinear op is described by (STYLE.md section 3).

``LinearRelaxation`` holds two lines per element for a unary op, ``PlaneRelaxation`` two planes
per element for a two-input op (Mul).  ``OpRule`` bundles an op's value, its interval (IBP)
function, its relaxation and its optimisable parameters.  The rules themselves live in
``bounds/ops/`` and are listed once in ``bounds.ops.RULES``.

Conventions shared by every rule
--------------------------------
* All functions are elementwise over tensors of any shape, take dtype and device from their
  inputs and never mutate them.  ``lower <= upper`` elementwise is assumed.
* **No information.**  Where nothing can be said (a pole inside the box, an overflowing
  exponential, an input outside the op's domain) a line is returned with slope exactly ``0``
  and bias ``-inf`` (lower) or ``+inf`` (upper); an interval end is ``-inf``/``+inf``.
  ``is_informative`` finds them.  Engines must treat ``0 * inf`` as ``0`` when they multiply
  such a line by a zero coefficient (``torch.where(coeff == 0, 0, coeff * bias)``).
  A relaxation never contains NaN, even for infinite bounds.
* **Parameters.**  A rule with ``num_params = k > 0`` takes ``params`` of shape
  ``(k, *bounds_shape)`` (``init_params(lower, upper)`` returns one).  Passing ``None`` means
  "the default (non-optimised, CROWN) relaxation".  *Every* finite value of ``params`` gives
  a sound relaxation: ``relax`` projects them onto the feasible set of the current
  ``(lower, upper)`` itself.  ``project_params`` exposes that projection so an optimiser can
  keep its iterate feasible (its gradients are then not wasted on clamped coordinates).
* **Kinks.**  ``kinks`` lists the points where ``f`` is not differentiable (attribute
  values bound in); a neuron is worth splitting there, and only while a kink lies strictly
  inside its interval if ``f`` is linear between kinks (``piecewise_linear``).
* **Attributes.**  Ops with ONNX attributes (LeakyRelu ``alpha``, Pow ``exponent``, Clip
  ``min``/``max``, HardSigmoid ``alpha``/``beta``) are registered with the ONNX defaults;
  ``rule.bind(node.attrs)`` returns the rule for other values (see ``bounds.ops.make_rule``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

Bounds = Tensor | tuple[Tensor, ...]


@dataclass(frozen=True)
class LinearRelaxation:
    """Elementwise: lower_slope*x + lower_bias <= f(x) <= upper_slope*x + upper_bias on [lower, upper]."""

    lower_slope: Tensor
    lower_bias: Tensor
    upper_slope: Tensor
    upper_bias: Tensor


@dataclass(frozen=True)
class PlaneRelaxation:
    """Elementwise, for z = f(x, y) on the box [x_lower, x_upper] x [y_lower, y_upper]:

    lower_x*x + lower_y*y + lower_bias <= z <= upper_x*x + upper_y*y + upper_bias.
    """

    lower_x: Tensor
    lower_y: Tensor
    lower_bias: Tensor
    upper_x: Tensor
    upper_y: Tensor
    upper_bias: Tensor


@dataclass(frozen=True)
class OpRule:
    """Everything the bound engine needs to know about one nonlinear ONNX op.

    For a unary op ``lower``/``upper`` are tensors; for an op with ``num_inputs = n > 1`` they
    are tuples of n tensors (one per input, broadcastable against each other) and
    ``evaluate`` takes n tensors.
    """

    op_type: str                                            # ONNX op_type, e.g. "Exp"
    evaluate: Callable[..., Tensor]                         # f itself (sampling, attacks)
    interval: Callable[[Bounds, Bounds], tuple[Tensor, Tensor]]  # sound [f_min, f_max] on a box
    relax: Callable[[Bounds, Bounds, Tensor | None], Any]   # LinearRelaxation / PlaneRelaxation
    init_params: Callable[[Bounds, Bounds], Tensor] | None = None   # (num_params, *shape)
    project_params: Callable[[Bounds, Bounds, Tensor], Tensor] | None = None
    num_params: int = 0
    num_inputs: int = 1
    branch_table: str | None = None                         # table name in lut/; None = midpoint
    input_range: tuple[float, float] = (float("-inf"), float("inf"))  # where f is defined
    # Points where f is not differentiable (kinks of piecewise-linear ops, jumps of step
    # functions).  Branch-and-bound splits a neuron at a kink strictly inside its interval,
    # where the two children's relaxations become exact or much tighter (a ReLU at 0).
    kinks: tuple[float, ...] = ()
    piecewise_linear: bool = False   # linear between the kinks: exact once no kink is inside
    attrs: Mapping[str, Any] = field(default_factory=dict)  # the attribute values this rule uses
    binder: Callable[[Mapping[str, Any]], "OpRule"] | None = None

    def bind(self, attrs: Mapping[str, Any] | None) -> "OpRule":
        """The rule for a node with these ONNX attributes (missing ones take ONNX defaults).

        Raises ``ValueError`` for attributes this op does not understand or cannot handle."""
        attrs = dict(attrs or {})
        if self.binder is None:
            if attrs:
                raise ValueError(f"{self.op_type} takes no attributes, got {sorted(attrs)}")
            return self
        return self.binder(attrs)


def is_informative(bias: Tensor) -> Tensor:
    """Elementwise: True where a line (or interval end) says something, i.e. its bias is finite."""
    return torch.isfinite(bias)
