"""Exact transfer functions of ops that are affine in their perturbed inputs.

Two directions, both exact:

* ``linear_interval``: interval (IBP) image of a box.  Weighted ops (Gemm, Conv, MatMul or Mul
  with a constant, ...) use centre/radius, ``f(c) +- |f|(r)`` with ``|f|`` the op with absolute
  weights and no bias; order-preserving ops (shape, index, sum, mean, pooling) are applied to
  both ends; Add/Sub/Neg use interval arithmetic.
* ``linear_adjoint``: the transpose map for backward propagation.  Coefficients are
  ``(batch, rows, *shape)``.  Hot ops have explicit adjoints; the rest use ``torch.func.vjp``
  of the ``FORWARD`` function (exact for an affine map).  The constant part of the op is
  ``f(0)`` (bias, padding value, ...), added as ``sum(coeffs * f(0))``.

``SHIFT_BY_MAX`` (softmax's ``x - x_k``, bounds/rewrite.py) takes its per-domain index ``k``
from the caller.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genbab.bounds.rewrite import SHIFT_BY_MAX
from genbab.verifier.forward import FORWARD
from genbab.verifier.graph import Node

Pair = tuple[Tensor, Tensor]

# ops whose output is linear in every perturbed input whatever is perturbed
ALWAYS_LINEAR = frozenset({
    "Gemm", "Conv", "ConvTranspose", "Add", "Sub", "Neg", "Identity", "Reshape", "Transpose",
    "Slice", "Gather", "Concat", "Split", "Pad", "Expand", "Tile", "Resize", "ReduceSum",
    "ReduceMean", "AveragePool", SHIFT_BY_MAX})
# order-preserving (monotone increasing) linear ops: IBP applies them to both ends
_MONOTONE = frozenset({
    "Identity", "Reshape", "Transpose", "Slice", "Gather", "Concat", "Split", "Pad", "Expand",
    "Tile", "Resize", "ReduceSum", "ReduceMean", "AveragePool"})
# ops with a constant weight operand: centre/radius IBP
_WEIGHTED = frozenset({"Gemm", "Conv", "ConvTranspose", "MatMul", "Mul", "Div"})
# pure data movement without duplication: keeps "a permutation of the input" exact for IBP
PERMUTING = frozenset({"Identity", "Reshape", "Transpose", "Slice", "Split"})
# elementwise-exact data movement: IBP of the output is exact given exact input intervals
DATA_MOVEMENT = frozenset({
    "Identity", "Reshape", "Transpose", "Slice", "Gather", "Concat", "Split", "Pad", "Expand",
    "Tile", "Resize", "Neg"})


def is_linear(node: Node, perturbed: Callable[[str], bool]) -> bool:
    """Whether ``node`` is affine in its perturbed inputs."""
    if node.op_type in ALWAYS_LINEAR:
        return True
    flags = [bool(name) and perturbed(name) for name in node.inputs]
    if node.op_type in ("Mul", "MatMul"):
        return sum(flags) == 1
    if node.op_type == "Div":
        return not flags[1]
    if node.op_type == "Pow":
        return float(node.attrs.get("exponent", 2.0)) == 1.0
    return False


def run(node: Node, args: list, batched: list) -> list[Tensor]:
    """FORWARD of one op (plus the engine-internal ShiftByMax with its index in ``args[1]``)."""
    if node.op_type == SHIFT_BY_MAX:
        return [shift_by_max(args[0], args[1], node.attrs["axis"])]
    if node.op_type == "Pow":   # exponent 1
        return [args[0]]
    return FORWARD[node.op_type](node, args, batched)


def shift_by_max(x: Tensor, index: Tensor, axis: int) -> Tensor:
    """``x - x[k]`` along ONNX ``axis``; x: (batch, *shape), index: (batch, *shape with axis 1)."""
    return x - torch.gather(x, axis + 1, index)


def shift_index(lower: Tensor, upper: Tensor, axis: int) -> Tensor:
    """The fixed index of 3.13: the argmax of the interval centres, per domain."""
    centre = torch.nan_to_num((lower + upper) / 2, nan=0.0)
    return torch.argmax(centre, dim=axis + 1, keepdim=True)


# -- IBP ------------------------------------------------------------------------------------
def _args(node: Node, pert: dict[str, Tensor], consts: dict[str, Tensor]) -> tuple[list, list]:
    args, batched = [], []
    for name in node.inputs:
        if name in pert:
            args.append(pert[name])
            batched.append(True)
        else:
            args.append(consts.get(name) if name else None)
            batched.append(False)
    return args, batched


def _fix_nan(lower: Tensor, upper: Tensor) -> Pair:
    return (torch.nan_to_num(lower, nan=float("-inf")),
            torch.nan_to_num(upper, nan=float("inf")))


def linear_interval(node: Node, bounds: dict[str, Pair], consts: dict[str, Tensor],
                    aux: Tensor | None = None) -> list[Pair]:
    """Sound (exact per element) interval of every output; ``bounds`` holds the perturbed inputs."""
    pert = {n: bounds[n] for n in node.inputs if n in bounds}
    op = node.op_type
    if op == SHIFT_BY_MAX:
        (lo, up), = pert.values()
        k, dim = aux, node.attrs["axis"] + 1
        lower = torch.where(_onehot_like(lo, k, dim), 0.0, lo - torch.gather(up, dim, k))
        upper = torch.where(_onehot_like(lo, k, dim), 0.0, up - torch.gather(lo, dim, k))
        return [_fix_nan(lower, upper)]
    if op == "Neg":
        (lo, up), = pert.values()
        return [(-up, -lo)]
    if op in ("Add", "Sub"):
        lows = {n: b[0] for n, b in pert.items()}
        ups = {n: b[1] for n, b in pert.items()}
        if op == "Sub" and node.inputs[1] in pert:
            lows[node.inputs[1]], ups[node.inputs[1]] = pert[node.inputs[1]][1], pert[node.inputs[1]][0]
        lower = run(node, *_args(node, lows, consts))[0]
        upper = run(node, *_args(node, ups, consts))[0]
        return [_fix_nan(lower, upper)]
    if op in _MONOTONE or op == "Pow":
        lows = run(node, *_args(node, {n: b[0] for n, b in pert.items()}, consts))
        ups = run(node, *_args(node, {n: b[1] for n, b in pert.items()}, consts))
        return list(zip(lows, ups))
    if op in _WEIGHTED:
        return [_weighted_interval(node, pert, consts)]
    raise NotImplementedError(f"no interval rule for linear op {op}")


def _weighted_interval(node: Node, pert: dict[str, Pair], consts: dict[str, Tensor]) -> Pair:
    (name, (lo, up)), = pert.items()
    centre, radius = (lo + up) / 2, (up - lo) / 2
    mid = run(node, *_args(node, {name: centre}, consts))[0]
    abs_consts = {}
    for i, n in enumerate(node.inputs):
        if n and n != name and n in consts:
            # drop the additive bias of Gemm / Conv / ConvTranspose (input 2)
            keep = not (i == 2 and node.op_type in ("Gemm", "Conv", "ConvTranspose"))
            abs_consts[n] = consts[n].abs() if keep else None
    args, batched = _args(node, {name: radius}, abs_consts)
    rad = run(node, args, batched)[0]
    return _fix_nan(mid - rad, mid + rad)


def _onehot_like(x: Tensor, index: Tensor, dim: int) -> Tensor:
    mask = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    return mask.scatter(dim, index.expand(*x.shape[:dim], 1, *x.shape[dim + 1:]), True)


# -- adjoints -------------------------------------------------------------------------------
def unbroadcast(coeffs: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``(batch, rows, *out)`` coefficients down to an operand of ONNX ``shape``."""
    extra = coeffs.dim() - 2 - len(shape)
    if extra > 0:
        coeffs = coeffs.sum(dim=tuple(range(2, 2 + extra)))
    dims = tuple(2 + i for i, (s, o) in enumerate(zip(shape, coeffs.shape[2:])) if s == 1 and o != 1)
    if dims:
        coeffs = coeffs.sum(dim=dims, keepdim=True)
    return coeffs


def linear_adjoint(node: Node, coeffs: list[Tensor | None], shapes: dict[str, tuple[int, ...]],
                   perturbed: set[str], consts: dict[str, Tensor],
                   aux: Tensor | None = None) -> dict[str, Tensor]:
    """Coefficients on each perturbed input, given those on each output (None = zero).

    Does not include the constant part; see ``constant_part``."""
    explicit = _ADJOINTS.get(node.op_type)
    if explicit is not None:
        result = explicit(node, coeffs, shapes, perturbed, consts, aux)
        if result is not None:
            return result
    return _vjp_adjoint(node, coeffs, shapes, perturbed, consts, aux)


def _vjp_adjoint(node: Node, coeffs: list[Tensor | None], shapes: dict[str, tuple[int, ...]],
                 perturbed: set[str], consts: dict[str, Tensor], aux: Tensor | None) -> dict[str, Tensor]:
    ref = next(c for c in coeffs if c is not None)
    batch, rows = ref.shape[:2]
    names = list(dict.fromkeys(n for n in node.inputs if n in perturbed))
    zeros = [ref.new_zeros((batch * rows, *shapes[n])) for n in names]
    idx = None if aux is None else aux.repeat_interleave(rows, dim=0)

    def fn(*xs: Tensor) -> tuple[Tensor, ...]:
        args, batched = _args(node, dict(zip(names, xs)), consts)
        if node.op_type == SHIFT_BY_MAX:
            args = [args[0], idx]
        return tuple(run(node, args, batched))

    outs, pullback = torch.func.vjp(fn, *zeros)
    cot = tuple(c.reshape(o.shape) if c is not None else torch.zeros_like(o)
                for c, o in zip(coeffs, outs))
    grads = pullback(cot)
    return {n: g.reshape(batch, rows, *shapes[n]) for n, g in zip(names, grads)}


def constant_part(node: Node, shapes: dict[str, tuple[int, ...]], perturbed: set[str],
                  consts: dict[str, Tensor], like: Tensor) -> list[Tensor | None]:
    """``f(0)`` per output, ``(1, *out_shape)``, or None where it is identically zero."""
    if node.op_type in (SHIFT_BY_MAX, "Neg", "Reshape", "Transpose", "Slice", "Gather", "Split",
                        "ReduceSum", "ReduceMean", "Identity", "Expand", "Tile", "Resize",
                        "AveragePool"):
        return [None] * len(node.outputs)
    pert = {n: like.new_zeros((1, *shapes[n])) for n in node.inputs if n in perturbed}
    outs = run(node, *_args(node, pert, consts))
    return [o if bool(o.ne(0).any()) else None for o in outs]


def _inputs(node: Node, perturbed: set[str]) -> list[tuple[int, str]]:
    return [(i, n) for i, n in enumerate(node.inputs) if n in perturbed]


def _adj_reshape(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    return {node.inputs[0]: c.reshape(*c.shape[:2], *shapes[node.inputs[0]])}


def _adj_transpose(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    perm = list(node.attrs["perm"])
    inverse = [perm.index(i) for i in range(len(perm))]
    return {node.inputs[0]: c.permute(0, 1, *(p + 2 for p in inverse))}


def _adj_neg(node, coeffs, shapes, perturbed, consts, aux):
    return {node.inputs[0]: -coeffs[0]}


def _adj_add_sub(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    result: dict[str, Tensor] = {}
    for i, name in _inputs(node, perturbed):
        part = unbroadcast(-c if (node.op_type == "Sub" and i == 1) else c, shapes[name])
        result[name] = result[name] + part if name in result else part
    return result


def _adj_mul_div(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    (i, name), = _inputs(node, perturbed)
    other = consts[node.inputs[1 - i]]
    scaled = c / other if node.op_type == "Div" else c * other
    return {name: unbroadcast(scaled, shapes[name])}


def _adj_gemm(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    return {node.inputs[0]: unbroadcast(torch.matmul(c, consts[node.inputs[1]].t()),
                                        shapes[node.inputs[0]])}


def _adj_matmul(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    (i, name), = _inputs(node, perturbed)
    other = consts[node.inputs[1 - i]]
    if other.dim() != 2 or len(shapes[name]) < 2:
        return None
    product = torch.matmul(c, other.t()) if i == 0 else torch.matmul(other.t(), c)
    return {name: unbroadcast(product, shapes[name])}


def _adj_conv(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    name = node.inputs[0]
    if name not in perturbed or any(n in perturbed for n in node.inputs[1:]):
        return None
    w = consts[node.inputs[1]]
    a = node.attrs
    in_shape = shapes[name]
    n = len(a["strides"])
    pads = a["pads"]
    spatial_in = in_shape[-n:]
    out_spatial = c.shape[-n:]
    extra = []
    for d in range(n):
        padded = spatial_in[d] + pads[d] + pads[d + n]
        full = (out_spatial[d] - 1) * a["strides"][d] + a["dilations"][d] * (w.shape[2 + d] - 1) + 1
        extra.append(padded - full)
    if any(e < 0 or e >= max(a["strides"][d], a["dilations"][d]) for d, e in enumerate(extra)):
        return None
    flat = c.reshape(-1, *c.shape[-n - 1:])
    conv_t = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]
    grad = conv_t(flat, w, None, a["strides"], 0, tuple(extra), a["group"], a["dilations"])
    index = [slice(None), slice(None)] + [slice(pads[d], pads[d] + spatial_in[d]) for d in range(n)]
    grad = grad[tuple(index)]
    return {name: grad.reshape(*c.shape[:2], *in_shape)}


def _adj_slice(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    a = node.attrs
    if any(s <= 0 for s in a["steps"]):
        return None
    name = node.inputs[0]
    full = c.new_zeros((*c.shape[:2], *shapes[name]))
    index: list[object] = [slice(None)] * full.dim()
    for axis, start, end, step in zip(a["axes"], a["starts"], a["ends"], a["steps"]):
        index[axis + 2] = slice(start, end, step)
    full[tuple(index)] = c
    return {name: full}


def _adj_gather(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    name = node.inputs[0]
    if name not in perturbed or node.inputs[1] in perturbed:
        return None
    in_shape = shapes[name]
    axis = node.attrs["axis"]
    idx = consts[node.inputs[1]].to(device=c.device, dtype=torch.int64).reshape(-1)
    idx = torch.where(idx < 0, idx + in_shape[axis], idx)
    flat = c.reshape(*c.shape[:2], *in_shape[:axis], idx.numel(), *in_shape[axis + 1:])
    full = c.new_zeros((*c.shape[:2], *in_shape))
    return {name: full.index_add(axis + 2, idx, flat)}


def _adj_concat(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    axis = node.attrs["axis"]
    sizes = [shapes[n][axis] for n in node.inputs]
    parts = torch.split(c, sizes, dim=axis + 2)
    result: dict[str, Tensor] = {}
    for name, part in zip(node.inputs, parts):
        # a part that is all zero is left out: the rows of a spec often read one input of
        # the output's Concat, and the backward pass then skips the others' whole branches
        if name in perturbed and (len(parts) == 1 or bool(part.any())):
            result[name] = result[name] + part if name in result else part
    return result


def _adj_split(node, coeffs, shapes, perturbed, consts, aux):
    ref = next(c for c in coeffs if c is not None)
    parts = [c if c is not None else ref.new_zeros((*ref.shape[:2], *shapes[o]))
             for c, o in zip(coeffs, node.outputs)]
    return {node.inputs[0]: torch.cat(parts, dim=node.attrs["axis"] + 2)}


def _adj_reduce(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    name = node.inputs[0]
    in_shape = shapes[name]
    axes = sorted(node.attrs["axes"]) or list(range(len(in_shape)))
    if not node.attrs["keepdims"]:
        for ax in axes:
            c = c.unsqueeze(ax + 2)
    c = c.expand(*c.shape[:2], *in_shape)
    if node.op_type == "ReduceMean":
        count = 1
        for ax in axes:
            count *= in_shape[ax]
        c = c / count
    return {name: c}


def _adj_pad(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    a = node.attrs
    name = node.inputs[0]
    rank = len(shapes[name])
    pads = a["pads"]
    if a["mode"] != "constant" or any(p < 0 for p in pads):
        return None
    index = [slice(None), slice(None)] + [slice(pads[d], pads[d] + shapes[name][d]) for d in range(rank)]
    return {name: c[tuple(index)]}


def _adj_shift(node, coeffs, shapes, perturbed, consts, aux):
    c, = coeffs
    dim = node.attrs["axis"] + 2
    total = c.sum(dim=dim, keepdim=True)
    k = aux.unsqueeze(1).expand(*c.shape[:dim], 1, *c.shape[dim + 1:])
    return {node.inputs[0]: c.scatter_add(dim, k, -total)}


_ADJOINTS: dict[str, Callable[..., dict[str, Tensor] | None]] = {
    "Reshape": _adj_reshape, "Identity": lambda n, c, *rest: {n.inputs[0]: c[0]},
    "Transpose": _adj_transpose, "Neg": _adj_neg, "Add": _adj_add_sub, "Sub": _adj_add_sub,
    "Mul": _adj_mul_div, "Div": _adj_mul_div, "Gemm": _adj_gemm, "MatMul": _adj_matmul,
    "Conv": _adj_conv, "Slice": _adj_slice, "Gather": _adj_gather, "Concat": _adj_concat,
    "Split": _adj_split, "ReduceSum": _adj_reduce, "ReduceMean": _adj_reduce, "Pad": _adj_pad,
    SHIFT_BY_MAX: _adj_shift, "Pow": lambda n, c, *rest: {n.inputs[0]: c[0]},
}
