"""The one list of supported nonlinearities (STYLE.md section 3).

``RULES`` maps an ONNX ``op_type`` to its ``OpRule`` with the ONNX default attributes.  For a
node, use ``make_rule(node.op_type, node.attrs)``, which binds the node's attributes:

* ``LeakyRelu``: ``alpha`` (default 0.01; any real);
* ``Pow``: ``exponent`` (the constant second input; default 2, the square);
* ``Clip``: ``min``, ``max`` (constant inputs; default -inf, +inf);
* ``HardSigmoid``: ``alpha`` (0.2), ``beta`` (0.5);
* ``Gelu``: ``approximate`` ("none" only).

Softmax, LayerNorm and Div are decomposed by the engine into these ops.
"""
from __future__ import annotations

from typing import Any, Mapping

from bounds.ops import cos, exp, leaky_relu, mul, pow, reciprocal, relu, sigmoid, sin, tanh
from bounds.relaxation import OpRule

RULES: dict[str, OpRule] = {r.op_type: r for r in (
    relu.RELU, leaky_relu.LEAKY_RELU, sigmoid.SIGMOID, tanh.TANH, sin.SIN, cos.COS, exp.EXP,
    reciprocal.RECIPROCAL, pow.POW, mul.MUL)}


def make_rule(op_type: str, attrs: Mapping[str, Any] | None = None) -> OpRule:
    """The rule for one node: ``RULES[op_type]`` bound to the node's attributes.

    Raises ``KeyError`` for an op with no rule and ``ValueError`` for bad attributes."""
    if op_type not in RULES:
        raise KeyError(f"no bound rule for op_type {op_type!r}; supported: {sorted(RULES)}")
    return RULES[op_type].bind(attrs)
