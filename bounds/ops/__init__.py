"""The one list of supported nonlinearities (STYLE.md section 3).

``RULES`` maps an ONNX ``op_type`` to its ``OpRule`` with the ONNX default attributes.  For a
node, use ``make_rule(node.op_type, node.attrs)``, which binds the node's attributes:

* ``LeakyRelu``: ``alpha`` (default 0.01; any real);
* ``Pow``: ``exponent`` (the constant second input; default 2, the square);
* ``Clip``: ``min``, ``max`` (the constant inputs; default -inf, +inf);
* ``HardSigmoid``: ``alpha`` (0.2), ``beta`` (0.5);
* ``Gelu``: ``approximate`` ("none" or "tanh");
* ``Elu``: ``alpha`` (1.0); ``Celu``: ``alpha`` (1.0, nonzero); ``Selu``: ``alpha``
  (1.67326...), ``gamma`` (1.05070...);
* ``Shrink``: ``bias`` (0.0), ``lambd`` (0.5); ``ThresholdedRelu``: ``alpha`` (1.0).

``SiLU`` (``x * sigmoid(x)``) and ``LogSigmoid`` (``log(sigmoid(x))``) are not ONNX ops: the
bound-time fusion (``bounds/fuse.py``) makes them from torch's exports, as it makes ``Mish``,
``Gelu``, ``Softsign`` and ``Shrink`` from theirs.  Softmax, LayerNorm, Div, ReduceMax and Ceil
are decomposed by the engine into these ops (``bounds/rewrite.py``).
"""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops import (abs, atan, celu, clip, cos, elu, erf, exp, floor, gelu, hard_sigmoid,
                               hard_swish, leaky_relu, log, log_sigmoid, mish, mul, pow, reciprocal,
                               relu, selu, shrink, sigmoid, sign, silu, sin, softplus, softsign,
                               sqrt, tanh, thresholded_relu)
from genbab.bounds.relaxation import OpRule

RULES: dict[str, OpRule] = {r.op_type: r for r in (
    relu.RELU, leaky_relu.LEAKY_RELU, sigmoid.SIGMOID, tanh.TANH, sin.SIN, cos.COS, exp.EXP,
    log.LOG, reciprocal.RECIPROCAL, sqrt.SQRT, pow.POW, mul.MUL, abs.ABS, sign.SIGN,
    floor.FLOOR, erf.ERF, gelu.GELU, clip.CLIP, hard_sigmoid.HARD_SIGMOID, softplus.SOFTPLUS,
    silu.SILU, elu.ELU, celu.CELU, selu.SELU, hard_swish.HARD_SWISH, softsign.SOFTSIGN,
    atan.ATAN, shrink.SHRINK, thresholded_relu.THRESHOLDED_RELU, mish.MISH,
    log_sigmoid.LOG_SIGMOID)}


def make_rule(op_type: str, attrs: Mapping[str, Any] | None = None) -> OpRule:
    """The rule for one node: ``RULES[op_type]`` bound to the node's attributes.

    Raises ``KeyError`` for an op with no rule and ``ValueError`` for bad attributes."""
    if op_type not in RULES:
        raise KeyError(f"no bound rule for op_type {op_type!r}; supported: {sorted(RULES)}")
    return RULES[op_type].bind(attrs)
