"""Bound-time fusion: elementwise subgraphs that exporters spell out become one unary op.

``torch.onnx.export`` writes many activations as small graphs of primitive ops: SiLU as
``x * Sigmoid(x)``, Mish as ``x * Tanh(Softplus(x))``, GeLU as ``0.5 * x * (1 + Erf(x / sqrt 2))``,
LogSigmoid as ``Log(Sigmoid(x))``, Softsign as ``x / (1 + |x|)``, Hardshrink and Softshrink as
``Where`` over comparisons.  Bounded op by op, these lose the fact that every operand is the
same ``x``: a product of two perturbed tensors gets McCormick planes, a ``Where`` over a
comparison has no relaxation at all.  ``fuse(graph)`` replaces each such subgraph by the one
op with a rule in ``bounds.ops`` (whose relaxation is exact in its offsets), keeping the final
node's name and output tensor; inner nodes that feed nothing else disappear.

Constants are matched to the precision of float32: the fused op is the exact function, which
differs from the graph's by the rounding of its float32 constants (relative ~1e-8, below the
float32 evaluation error of the graph itself).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from genbab.verifier.graph import Graph, Node

_REL_TOL = 1e-6   # constants: |c - exact| <= 1e-6 |exact| (float32 rounding is 6e-8)


@dataclass(frozen=True)
class _Match:
    x: str                 # the one perturbed tensor the fused op reads
    op_type: str
    attrs: dict


class _Ctx:
    """Lookups on the graph a pattern needs: producers and scalar constants."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.producer = graph.producers()

    def node(self, tensor: str, op_type: str) -> Node | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def scalar(self, tensor: str) -> float | None:
        """The value of a constant whose elements are all equal and that cannot broadcast
        the other operand to a larger shape (one element)."""
        value = self.graph.constants.get(tensor)
        if value is None or value.numel() != 1 or not value.is_floating_point():
            return None
        return float(value.reshape(()))

    def with_scalar(self, node: Node | None, commutative: bool = True) -> tuple[str, float] | None:
        """(perturbed operand, scalar) of a binary node with one scalar constant operand."""
        if node is None or len(node.inputs) != 2:
            return None
        a, b = node.inputs
        if self.scalar(b) is not None and a not in self.graph.constants:
            return a, self.scalar(b)
        if commutative and self.scalar(a) is not None:
            return b, self.scalar(a)
        return None

    def other(self, node: Node, tensor: str) -> str | None:
        """The other input of a binary node one of whose inputs is ``tensor``."""
        if len(node.inputs) != 2 or tensor not in node.inputs:
            return None
        a, b = node.inputs
        return b if a == tensor else a


def _close(value: float | None, exact: float) -> bool:
    return value is not None and abs(value - exact) <= _REL_TOL * abs(exact)


def _unary_of(ctx: _Ctx, tensor: str, op_type: str) -> str | None:
    node = ctx.node(tensor, op_type)
    return node.inputs[0] if node is not None and len(node.inputs) == 1 else None


def _silu(ctx: _Ctx, node: Node) -> _Match | None:
    """``x * Sigmoid(x)``."""
    for x, s in (node.inputs, node.inputs[::-1]):
        if _unary_of(ctx, s, "Sigmoid") == x:
            return _Match(x, "SiLU", {})
    return None


def _mish(ctx: _Ctx, node: Node) -> _Match | None:
    """``x * Tanh(Softplus(x))``."""
    for x, t in (node.inputs, node.inputs[::-1]):
        inner = _unary_of(ctx, t, "Tanh")
        if inner is not None and _unary_of(ctx, inner, "Softplus") == x:
            return _Match(x, "Mish", {})
    return None


def _gelu_erf_arg(ctx: _Ctx, a: str) -> str | None:
    """``x`` where ``a = 1 + Erf(x / sqrt 2)`` (or ``Erf(x * (1 / sqrt 2))``)."""
    plus = ctx.with_scalar(ctx.node(a, "Add"))
    if plus is None or plus[1] != 1.0:
        return None
    inner = _unary_of(ctx, plus[0], "Erf")
    if inner is None:
        return None
    div = ctx.with_scalar(ctx.node(inner, "Div"), commutative=False)
    if div is not None and _close(div[1], math.sqrt(2.0)):
        return div[0]
    mul = ctx.with_scalar(ctx.node(inner, "Mul"))
    if mul is not None and _close(mul[1], 1 / math.sqrt(2.0)):
        return mul[0]
    return None


def _gelu_tanh_arg(ctx: _Ctx, a: str) -> str | None:
    """``x`` where ``a = 1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))``."""
    plus = ctx.with_scalar(ctx.node(a, "Add"))
    if plus is None or plus[1] != 1.0:
        return None
    inner = _unary_of(ctx, plus[0], "Tanh")
    scaled = ctx.with_scalar(ctx.node(inner, "Mul")) if inner is not None else None
    if scaled is None or not _close(scaled[1], math.sqrt(2 / math.pi)):
        return None
    add = ctx.node(scaled[0], "Add")
    if add is None or len(add.inputs) != 2:
        return None
    for x, w in (add.inputs, add.inputs[::-1]):
        cubic = ctx.with_scalar(ctx.node(w, "Mul"))
        if cubic is not None and _close(cubic[1], 0.044715) and _is_cube(ctx, cubic[0], x):
            return x
    return None


def _is_cube(ctx: _Ctx, tensor: str, x: str) -> bool:
    """``tensor = x^3``: ``Pow(x, 3)`` or ``x * x^2`` (the loader turns ``x * x`` into Pow)."""
    pow_node = ctx.node(tensor, "Pow")
    if pow_node is not None:
        return pow_node.inputs[0] == x and float(pow_node.attrs.get("exponent", 2.0)) == 3.0
    mul = ctx.node(tensor, "Mul")
    if mul is None or x not in mul.inputs:
        return False
    square = ctx.node(ctx.other(mul, x) or "", "Pow")
    return square is not None and square.inputs[0] == x and \
        float(square.attrs.get("exponent", 2.0)) == 2.0


def _gelu(ctx: _Ctx, node: Node) -> _Match | None:
    """``0.5 * (x * a)`` or ``(0.5 * x) * a`` with ``a`` one of the two GeLU forms."""
    half = ctx.with_scalar(node)
    if half is not None and half[1] == 0.5:                      # 0.5 * (x * a)
        product = ctx.node(half[0], "Mul")
        pairs = [product.inputs, product.inputs[::-1]] if product is not None else []
    else:                                                         # (0.5 * x) * a
        pairs = []
        for h, a in (node.inputs, node.inputs[::-1]):
            scaled = ctx.with_scalar(ctx.node(h, "Mul"))
            if scaled is not None and scaled[1] == 0.5:
                pairs.append((scaled[0], a))
    for x, a in pairs:
        if _gelu_erf_arg(ctx, a) == x:
            return _Match(x, "Gelu", {"approximate": "none"})
        if _gelu_tanh_arg(ctx, a) == x:
            return _Match(x, "Gelu", {"approximate": "tanh"})
    return None


def _log_sigmoid(ctx: _Ctx, node: Node) -> _Match | None:
    """``Log(Sigmoid(x))``."""
    x = _unary_of(ctx, node.inputs[0], "Sigmoid")
    return _Match(x, "LogSigmoid", {}) if x is not None else None


def _softsign(ctx: _Ctx, node: Node) -> _Match | None:
    """``x / (1 + |x|)``."""
    x, d = node.inputs
    plus = ctx.with_scalar(ctx.node(d, "Add"))
    if plus is not None and plus[1] == 1.0 and _unary_of(ctx, plus[0], "Abs") == x:
        return _Match(x, "Softsign", {})
    return None


def _compare(ctx: _Ctx, tensor: str, op_type: str) -> tuple[str, float] | None:
    """(x, c) where ``tensor = op_type(x, c)`` with a scalar constant ``c``."""
    return ctx.with_scalar(ctx.node(tensor, op_type), commutative=False)


def _hardshrink(ctx: _Ctx, node: Node) -> _Match | None:
    """``Where(x > l or x < -l, x, 0)``: ONNX Shrink with bias 0."""
    cond, x, zero = node.inputs
    either = ctx.node(cond, "Or")
    if either is None or ctx.scalar(zero) != 0.0:
        return None
    for gt, lt in (either.inputs, either.inputs[::-1]):
        above, below = _compare(ctx, gt, "Greater"), _compare(ctx, lt, "Less")
        if above and below and above[0] == below[0] == x and above[1] >= 0 \
                and below[1] == -above[1]:
            return _Match(x, "Shrink", {"bias": 0.0, "lambd": above[1]})
    return None


def _shrink_side(ctx: _Ctx, tensor: str, compare: str,
                 shift: str) -> tuple[str, float, float] | None:
    """(x, threshold, shift) where ``tensor = Where(compare(x, threshold), shift(x, s), 0)``."""
    where = ctx.node(tensor, "Where")
    if where is None or ctx.scalar(where.inputs[2]) != 0.0:
        return None
    test = _compare(ctx, where.inputs[0], compare)
    moved = ctx.with_scalar(ctx.node(where.inputs[1], shift), commutative=shift == "Add")
    if test is None or moved is None or test[0] != moved[0]:
        return None
    return test[0], test[1], moved[1]


def _softshrink(ctx: _Ctx, node: Node) -> _Match | None:
    """``Where(x > l, x - l, 0) + Where(x < -l, x + l, 0)``: ONNX Shrink with bias = lambd."""
    for a, b in (node.inputs, node.inputs[::-1]):
        upper = _shrink_side(ctx, a, "Greater", "Sub")
        lower = _shrink_side(ctx, b, "Less", "Add")
        if upper is None or lower is None or upper[0] != lower[0]:
            continue
        lam = upper[1]
        if lam >= 0 and upper[2] == lam and lower[1] == -lam and lower[2] == lam:
            return _Match(upper[0], "Shrink", {"bias": lam, "lambd": lam})
    return None


_PATTERNS: dict[str, tuple[Callable[[_Ctx, Node], _Match | None], ...]] = {
    "Mul": (_silu, _mish, _gelu),
    "Log": (_log_sigmoid,),
    "Div": (_softsign,),
    "Where": (_hardshrink,),
    "Add": (_softshrink,),
}


def fuse(graph: Graph) -> Graph:
    """``graph`` with every matched subgraph replaced by one unary node (a new graph; the
    same object when nothing matched)."""
    ctx = _Ctx(graph)
    nodes, changed = [], False
    for node in graph.nodes:
        match = next((m for p in _PATTERNS.get(node.op_type, ())
                      if (m := p(ctx, node)) is not None), None)
        if match is None:
            nodes.append(node)
            continue
        nodes.append(Node(node.name, match.op_type, (match.x,), node.outputs[:1], match.attrs))
        changed = True
    if not changed:
        return graph
    live = _live(nodes, graph.output_name)
    used = {n for node in live for n in node.inputs} | {graph.output_name, graph.input_name}
    kept = used | {o for node in live for o in node.outputs}
    return Graph(graph.input_name, graph.output_name, tuple(live),
                 {k: v for k, v in graph.constants.items() if k in used},
                 {k: v for k, v in graph.shapes.items() if k in kept},
                 graph.source, graph.onnx_input_shape, graph.onnx_output_shape)


def _live(nodes: list[Node], output: str) -> list[Node]:
    needed, live = {output}, []
    for node in reversed(nodes):
        if needed.intersection(node.outputs):
            live.append(node)
            needed.update(n for n in node.inputs if n)
    return live[::-1]
