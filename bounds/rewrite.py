"""Bound-time graph rewrites: composite ops become primitive ones (algorithms.md 1.1, 3.11-3.14).

``prepare(graph)`` returns a new ``Graph`` (cached per graph object) in which every perturbed node
is either linear in its perturbed inputs, an elementwise op with a rule in ``bounds.ops``, a
product of two perturbed tensors (``Mul``/``MatMul``), or the engine-internal ``ShiftByMax``:

* ``Div(x, y)`` with ``y`` perturbed -> ``Mul(x, Reciprocal(y))``          (3.11)
* ``Softmax`` -> ``ShiftByMax`` (``x - x_k``, ``k`` fixed per domain at bound time) -> ``Exp`` ->
  ``ReduceSum`` -> ``Reciprocal`` -> ``Mul``                                 (3.13)
* ``LogSoftmax`` -> ``ShiftByMax`` -> ``Exp`` -> ``ReduceSum`` -> ``Log`` -> ``Sub``
* ``LayerNormalization`` -> mean, centre, square, mean, ``+eps``, ``Sqrt``, ``Reciprocal``,
  ``Mul``, then the affine ``gamma``/``beta``                                (3.14)
* ``Max``/``Min`` of two tensors -> ``a + Relu(b - a)`` / ``a - Relu(a - b)`` (exact)
* ``ReduceSum(Mul(z, MatMul(z, P)), last axis)`` with ``P`` constant (a quadratic form
  ``z^T P z``, e.g. a Lyapunov function) -> a weighted sum of squares of linear forms
  ``sum_i lam_i (q_i . z)^2`` plus an exact remainder (``_squares``)
* ``ReduceMax``/``ReduceMin`` -> one-wide ``Slice``s along each axis combined the same way;
  ``Ceil(x)`` -> ``-Floor(-x)``
* ``MaxPool`` without padding or dilation -> strided ``Slice``s combined by that exact ``Max``
  rewrite (a pairwise tree).  This replaces the one-hot/constant relaxation of 3.12 by ReLU
  relaxations of the pairwise differences, which is never looser for a pool of two and in
  practice tighter; padded pools are not supported.

The output tensor of a rewritten node keeps its ONNX name, so bounds keyed by tensor name refer
to the same values before and after.  New tensors are named ``<output>/<role>``.
"""
from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from genbab.bounds.fuse import fuse
from genbab.verifier.graph import Graph, Node

SHIFT_BY_MAX = "ShiftByMax"   # engine-internal: y = x - x[k] along attrs["axis"] (ONNX axis)

_CACHE: dict[int, Graph] = {}   # id(original graph) -> rewritten graph, dropped with the original


class _Builder:
    """Accumulates nodes, constants and shapes of the rewritten graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[Node] = []
        self.constants = dict(graph.constants)
        self.shapes = dict(graph.shapes)
        self.perturbed = {graph.input_name} | {o for n in graph.nodes for o in n.outputs}

    def emit(self, op_type: str, inputs: list[str], output: str, shape: tuple[int, ...],
             name: str, **attrs: object) -> str:
        self.nodes.append(Node(name, op_type, tuple(inputs), (output,), attrs))
        self.shapes[output] = tuple(shape)
        return output

    def const(self, name: str, value: torch.Tensor) -> str:
        self.constants[name] = value
        self.shapes[name] = tuple(value.shape)
        return name

    def is_perturbed(self, name: str) -> bool:
        return name in self.perturbed


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*shapes))


def _rewrite_div(b: _Builder, node: Node) -> bool:
    x, y = node.inputs
    if not b.is_perturbed(y):
        return False
    out = node.output
    r = b.emit("Reciprocal", [y], f"{out}/reciprocal", b.shapes[y], f"{node.name}/reciprocal")
    b.emit("Mul", [x, r], out, b.shapes[out], node.name)
    return True


def _softmax_core(b: _Builder, node: Node, axis: int) -> tuple[str, str, tuple[int, ...]]:
    """Shift, exp and sum: returns (shifted, summed, summed shape)."""
    x, out = node.inputs[0], node.output
    shape = b.shapes[x]
    shifted = b.emit(SHIFT_BY_MAX, [x], f"{out}/shifted", shape, f"{node.name}/shift", axis=axis)
    e = b.emit("Exp", [shifted], f"{out}/exp", shape, f"{node.name}/exp")
    summed_shape = tuple(1 if i == axis else d for i, d in enumerate(shape))
    total = b.emit("ReduceSum", [e], f"{out}/sum", summed_shape, f"{node.name}/sum",
                   axes=(axis,), keepdims=1)
    return e, total, summed_shape


def _rewrite_softmax(b: _Builder, node: Node) -> bool:
    out = node.output
    e, total, summed_shape = _softmax_core(b, node, node.attrs["axis"])
    r = b.emit("Reciprocal", [total], f"{out}/reciprocal", summed_shape, f"{node.name}/reciprocal")
    b.emit("Mul", [e, r], out, b.shapes[out], node.name)
    return True


def _rewrite_log_softmax(b: _Builder, node: Node) -> bool:
    out = node.output
    _, total, summed_shape = _softmax_core(b, node, node.attrs["axis"])
    log = b.emit("Log", [total], f"{out}/log", summed_shape, f"{node.name}/log")
    b.emit("Sub", [f"{out}/shifted", log], out, b.shapes[out], node.name)
    return True


def _rewrite_layer_norm(b: _Builder, node: Node) -> bool:
    x, out = node.inputs[0], node.output
    shape = b.shapes[x]
    axes = tuple(range(node.attrs["axis"], len(shape)))
    reduced = tuple(1 if i in axes else d for i, d in enumerate(shape))
    n = node.name
    mean = b.emit("ReduceMean", [x], f"{out}/mean", reduced, f"{n}/mean", axes=axes, keepdims=1)
    d = b.emit("Sub", [x, mean], f"{out}/centred", shape, f"{n}/centred")
    sq = b.emit("Pow", [d], f"{out}/square", shape, f"{n}/square", exponent=2.0)
    var = b.emit("ReduceMean", [sq], f"{out}/var", reduced, f"{n}/var", axes=axes, keepdims=1)
    eps = b.const(f"{out}/epsilon", torch.tensor(float(node.attrs["epsilon"])))
    ve = b.emit("Add", [var, eps], f"{out}/var_eps", reduced, f"{n}/var_eps")
    std = b.emit("Sqrt", [ve], f"{out}/std", reduced, f"{n}/std")
    inv = b.emit("Reciprocal", [std], f"{out}/inv_std", reduced, f"{n}/inv_std")
    rest = [a for a in node.inputs[1:] if a]
    target = out if len(rest) == 0 else f"{out}/normed"
    normed = b.emit("Mul", [d, inv], target, shape, f"{n}/normed" if rest else n)
    if rest:
        target = out if len(rest) == 1 else f"{out}/scaled"
        scaled = b.emit("Mul", [normed, rest[0]], target, shape, n if len(rest) == 1 else f"{n}/scaled")
        if len(rest) > 1:
            b.emit("Add", [scaled, rest[1]], out, shape, n)
    return True


def _emit_max(b: _Builder, first: str, second: str, out: str, name: str, minimum: bool) -> str:
    """max(a, b) = a + relu(b - a);  min(a, b) = a - relu(a - b)."""
    shape = _broadcast(b.shapes[first], b.shapes[second])
    diff_in = [first, second] if minimum else [second, first]
    diff = b.emit("Sub", diff_in, f"{out}/diff", shape, f"{name}/diff")
    relu = b.emit("Relu", [diff], f"{out}/relu", shape, f"{name}/relu")
    return b.emit("Sub" if minimum else "Add", [first, relu], out, shape, name)


def _max_tree(b: _Builder, parts: list[str], out: str, name: str, minimum: bool) -> str:
    level = 0
    while len(parts) > 1:
        paired = []
        for i in range(0, len(parts) - 1, 2):
            last = len(parts) == 2
            target = out if last else f"{out}/max{level}_{i // 2}"
            paired.append(_emit_max(b, parts[i], parts[i + 1], target,
                                    name if last else f"{name}/max{level}_{i // 2}", minimum))
        if len(parts) % 2:
            paired.append(parts[-1])
        parts, level = paired, level + 1
    return parts[0]


def _rewrite_max_min(b: _Builder, node: Node) -> bool:
    inputs = [a for a in node.inputs if a]
    if len(inputs) == 1:
        return False
    # a constant operand first keeps `a + relu(b - a)` a function of one perturbed diff
    inputs.sort(key=b.is_perturbed)
    _max_tree(b, inputs, node.output, node.name, node.op_type == "Min")
    return True


def _rewrite_max_pool(b: _Builder, node: Node) -> bool:
    a = node.attrs
    kernel, strides = tuple(a["kernel_shape"]), tuple(a["strides"])
    if any(a["pads"]) or any(d != 1 for d in a["dilations"]):
        return False
    x, out = node.inputs[0], node.output
    out_shape = b.shapes[out]
    rank, n = len(out_shape), len(kernel)
    parts = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        axes = tuple(range(rank - n, rank))
        starts = offsets
        ends = tuple(o + s * (out_shape[ax] - 1) + 1 for o, s, ax in zip(offsets, strides, axes))
        tag = "_".join(map(str, offsets))
        parts.append(b.emit("Slice", [x], f"{out}/window{tag}", out_shape, f"{node.name}/window{tag}",
                            axes=axes, starts=starts, ends=ends, steps=strides))
    _max_tree(b, parts, out, node.name, minimum=False)
    return True


def _rewrite_reduce_max(b: _Builder, node: Node) -> bool:
    """ReduceMax / ReduceMin: along each reduced axis, the exact pairwise Max tree of its
    one-wide slices (as MaxPool), then a Reshape when the axes are not kept."""
    x, out = node.inputs[0], node.output
    shape = list(b.shapes[x])
    minimum, current = node.op_type == "ReduceMin", x
    axes = [a for a in node.attrs["axes"] if shape[a] > 1]
    if not axes:                        # only one-wide axes: the identity
        _emit_reshape(b, x, out, node.name)
        return True
    for k, axis in enumerate(axes):
        tag = f"{out}/axis{axis}"
        shape[axis] = 1
        parts = [b.emit("Slice", [current], f"{tag}_{i}", tuple(shape), f"{node.name}/axis{axis}_{i}",
                        axes=(axis,), starts=(i,), ends=(i + 1,), steps=(1,))
                 for i in range(b.shapes[current][axis])]
        last = k == len(axes) - 1 and node.attrs["keepdims"]
        current = _max_tree(b, parts, out if last else f"{tag}/max",
                            node.name if last else f"{node.name}/axis{axis}", minimum)
    if not node.attrs["keepdims"]:
        _emit_reshape(b, current, out, node.name)
    return True


def _emit_reshape(b: _Builder, x: str, out: str, name: str) -> None:
    """``Reshape`` to ``out``'s known shape (its attribute is also called ``shape``)."""
    b.nodes.append(Node(name, "Reshape", (x,), (out,), {"shape": tuple(b.shapes[out])}))


def _rewrite_ceil(b: _Builder, node: Node) -> bool:
    """``ceil(x) = -floor(-x)``, exactly."""
    x, out, shape = node.inputs[0], node.output, b.shapes[node.output]
    neg = b.emit("Neg", [x], f"{out}/neg", shape, f"{node.name}/neg")
    floor = b.emit("Floor", [neg], f"{out}/floor", shape, f"{node.name}/floor")
    b.emit("Neg", [floor], out, shape, node.name)
    return True


_REWRITES: dict[str, Callable[[_Builder, Node], bool]] = {
    "ReduceMax": _rewrite_reduce_max,
    "ReduceMin": _rewrite_reduce_max,
    "Ceil": _rewrite_ceil,
    "Div": _rewrite_div,
    "Softmax": _rewrite_softmax,
    "LogSoftmax": _rewrite_log_softmax,
    "LayerNormalization": _rewrite_layer_norm,
    "Max": _rewrite_max_min,
    "Min": _rewrite_max_min,
    "MaxPool": _rewrite_max_pool,
}


@dataclass(frozen=True)
class _QuadraticForm:
    """``ReduceSum(Mul(z, MatMul(z, P)), last axis)``: ``z^T P z`` with ``P`` constant."""

    z: str
    matrix: torch.Tensor
    inner: frozenset[str]   # the Mul and MatMul nodes the form replaces


def _quadratic_forms(graph: Graph) -> dict[str, _QuadraticForm]:
    """ReduceSum node name -> the quadratic form it computes, where its Mul and MatMul feed
    nothing else (so they can be dropped)."""
    producer, readers = graph.producers(), graph.consumers()

    def private(tensor: str) -> bool:
        return len(readers.get(tensor, ())) == 1 and tensor != graph.output_name

    found = {}
    for node in graph.nodes:
        if node.op_type != "ReduceSum" or len(node.inputs) != 1:
            continue
        mul = producer.get(node.inputs[0])
        shape = graph.shapes[node.inputs[0]]
        axes = tuple(a % len(shape) for a in node.attrs.get("axes") or ()) if shape else ()
        if (mul is None or mul.op_type != "Mul" or axes != (len(shape) - 1,)
                or not private(mul.output)):
            continue
        for z, t in (mul.inputs, mul.inputs[::-1]):
            mm = producer.get(t)
            if (mm is None or mm.op_type != "MatMul" or mm.inputs[0] != z or not private(t)
                    or mm.inputs[1] not in graph.constants
                    or (z not in producer and z != graph.input_name)):
                continue
            matrix = graph.constants[mm.inputs[1]]
            if (matrix.dim() == 2 and tuple(matrix.shape) == (shape[-1], shape[-1])
                    and graph.shapes[z] == shape == graph.shapes[t]):
                found[node.name] = _QuadraticForm(z, matrix, frozenset({mul.name, mm.name}))
                break
    return found


def _squares(b: _Builder, form: _QuadraticForm, node: Node) -> None:
    """``z^T P z`` as a weighted sum of squares of linear forms plus an exact remainder.

    With ``S = (P + P^T) / 2 = Q diag(lam) Q^T``: ``z^T P z = sum_i lam_i (q_i . z)^2 +
    z^T (P - Q diag(lam) Q^T) z``.  McCormick planes on the coordinates of ``z * (z @ P)``
    ignore that both factors move together; a square of one linear form is relaxed by a
    tangent and a chord (on lsnc's Lyapunov level ``V(x)`` the bound's gap to the true minimum
    drops several-fold).  Q and lam are rounded to float32 first and the remainder is taken in
    float64 against the rounded values, so the rewritten function equals the original to
    float64 precision in any working dtype; the remainder (about 1e-7 of P) is a McCormick
    product, as the whole form was before."""
    out, name, z = node.output, node.name, form.z
    p64 = form.matrix.double()
    lam, q = torch.linalg.eigh((p64 + p64.T) / 2)
    q32, lam32 = q.float(), lam.float()
    rest = p64 - q32.double() @ torch.diag(lam32.double()) @ q32.double().T
    shape, reduced = b.shapes[z], b.shapes[out]
    keep = dict(axes=(len(shape) - 1,), keepdims=int(len(reduced) == len(shape)))
    proj = b.emit("MatMul", [z, b.const(f"{out}/eigenvectors", q32)], f"{out}/proj", shape,
                  f"{name}/proj")
    square = b.emit("Pow", [proj], f"{out}/square", shape, f"{name}/square", exponent=2.0)
    weighted = b.emit("Mul", [square, b.const(f"{out}/eigenvalues", lam32)], f"{out}/weighted",
                      shape, f"{name}/weighted")
    if not bool(rest.abs().max() > 0):
        b.emit("ReduceSum", [weighted], out, reduced, name, **keep)
        return
    forms = b.emit("ReduceSum", [weighted], f"{out}/squares", reduced, f"{name}/squares", **keep)
    moved = b.emit("MatMul", [z, b.const(f"{out}/remainder_matrix", rest)],
                   f"{out}/remainder_z", shape, f"{name}/remainder_z")
    prod = b.emit("Mul", [z, moved], f"{out}/remainder_prod", shape, f"{name}/remainder_prod")
    remainder = b.emit("ReduceSum", [prod], f"{out}/remainder", reduced, f"{name}/remainder",
                       **keep)
    b.emit("Add", [forms, remainder], out, reduced, name)


def prepare(graph: Graph) -> Graph:
    """The graph with exported activations fused (``bounds.fuse``) and composite ops
    decomposed (cached; the input graph is not modified)."""
    cached = _CACHE.get(id(graph))
    if cached is not None:
        return cached
    original, graph = graph, fuse(graph)
    b = _Builder(graph)
    forms = _quadratic_forms(graph)
    dropped = set().union(*(f.inner for f in forms.values())) if forms else set()
    for node in graph.nodes:
        if node.name in dropped:
            continue
        if node.name in forms:
            _squares(b, forms[node.name], node)
            continue
        rewrite = _REWRITES.get(node.op_type)
        if rewrite is None or not rewrite(b, node):
            b.nodes.append(node)
    result = Graph(graph.input_name, graph.output_name, tuple(b.nodes), b.constants, b.shapes,
                   graph.source, graph.onnx_input_shape, graph.onnx_output_shape)
    _CACHE[id(original)] = result
    weakref.finalize(original, _CACHE.pop, id(original), None)
    return result
