"""Per-op normalisation of ONNX nodes into genbab's IR (see ``verifier/onnx_loader.py`` for
what the IR guarantees).  ``NORMALISERS[op_type](builder, src)`` reads one ONNX node whose
inputs are resolved and either folds it into a constant or emits normalised nodes."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from genbab.verifier.onnx_builder import DTYPE_NAMES, Builder, Src, tensor_to_torch
from genbab.verifier.onnx_recurrent import RECURRENT_NORMALISERS


# -- normalisers ----------------------------------------------------------------------------
def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _ints(t: torch.Tensor | None) -> tuple[int, ...]:
    return () if t is None else tuple(int(v) for v in t.reshape(-1).tolist())


def _same(b: Builder, s: Src, op_type: str | None = None, **attrs: object) -> None:
    b.emit(op_type or s.op_type, s.inputs, s.outputs[:1], s.name, **attrs)


def _alias(b: Builder, s: Src) -> None:
    b.alias(s.outputs[0], s.inputs[0])


def _reshape_to(b: Builder, s: Src, shape: tuple[int, ...]) -> None:
    b.emit("Reshape", [s.inputs[0]], s.outputs[:1], s.name, shape=tuple(shape))


def _norm_reshape(b: Builder, s: Src) -> None:
    src_shape = b.shape(s.inputs[0])
    target = list(_ints(b.const(s, 1, "shape")))
    if not s.attr("allowzero", 0):
        target = [src_shape[i] if d == 0 else d for i, d in enumerate(target)]
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(src_shape) // known if known else 0
    if math.prod(target) != math.prod(src_shape):
        raise b.error(s, f"cannot reshape {src_shape} to {tuple(target)}")
    _reshape_to(b, s, tuple(target))


def _norm_flatten(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    axis = _axis(int(s.attr("axis", 1)), len(shape))
    _reshape_to(b, s, (math.prod(shape[:axis]), math.prod(shape[axis:])))


def _norm_squeeze(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    axes = s.attr("axes") if b.opset < 13 else _ints(b.const(s, 1, "axes"))
    axes = {_axis(a, len(shape)) for a in axes or [i for i, d in enumerate(shape) if d == 1]}
    _reshape_to(b, s, tuple(d for i, d in enumerate(shape) if i not in axes))


def _norm_unsqueeze(b: Builder, s: Src) -> None:
    shape = list(b.shape(s.inputs[0]))
    axes = s.attr("axes") if b.opset < 13 else _ints(b.const(s, 1, "axes"))
    rank = len(shape) + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    _reshape_to(b, s, tuple(shape))




def _norm_shape(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    start, end = int(s.attr("start", 0)), s.attr("end")
    b.set_constant(s.outputs[0], torch.tensor(shape[start:end], dtype=torch.int64))


def _norm_size(b: Builder, s: Src) -> None:
    b.set_constant(s.outputs[0], torch.tensor(math.prod(b.shape(s.inputs[0])), dtype=torch.int64))


def _norm_constant_of_shape(b: Builder, s: Src) -> None:
    b.const(s, 0, "shape")
    value = s.attrs.get("value")
    tensor = tensor_to_torch(value, b.where) if value is not None else torch.zeros(1)
    dtype = str(tensor.dtype).replace("torch.", "")
    b.emit("ConstantOfShape", s.inputs, s.outputs, s.name,
           value=tensor.reshape(-1)[0].item(), dtype=dtype)


def _norm_cast(b: Builder, s: Src) -> None:
    to = DTYPE_NAMES.get(int(s.attr("to")))
    if to is None:
        raise b.error(s, f"cast to unsupported type {s.attr('to')}")
    if not b.is_const(s.inputs[0]):
        source = b.probe[s.inputs[0]].dtype
        if source.is_floating_point and to in ("float32", "float64") or \
                str(source).replace("torch.", "") == to:
            _alias(b, s)    # float to float, or a no-op cast (bool to bool)
        else:
            _same(b, s, to=to)   # e.g. a comparison cast to float: evaluable, no relaxation
        return
    _same(b, s, to=to)


def _norm_prelu(b: Builder, s: Src) -> None:
    """``PRelu(x, s) = s x + (1 - s) Relu(x)`` (exact for any slope): one shared slope is a
    LeakyRelu; a slope per channel becomes a Relu whose two linear terms carry it."""
    slope = b.const(s, 1, "slope")
    x, out = s.inputs[0], s.outputs[0]
    if slope.numel() == 1:
        b.emit("LeakyRelu", [x], [out], s.name, alpha=float(slope.reshape(())))
        return
    relu, linear, rest = f"{out}/relu", f"{out}/linear", f"{out}/rest"
    b.emit("Relu", [x], [relu], f"{s.name}/relu")
    b.emit("Mul", [x, s.inputs[1]], [linear], f"{s.name}/linear")
    b.emit("Mul", [relu, b.const_tensor(s.name + "/rest_slope", 1 - slope)], [rest],
           f"{s.name}/rest")
    b.emit("Add", [linear, rest], [out], s.name)


def _norm_gemm(b: Builder, s: Src) -> None:
    a_name, b_name, c_name = s.input(0), s.input(1), s.input(2)
    alpha, beta = float(s.attr("alpha", 1.0)), float(s.attr("beta", 1.0))
    if s.attr("transA", 0):
        a_name = _transposed(b, s, a_name, "transpose_a")
    if s.attr("transB", 0):
        b_name = _transposed(b, s, b_name, "transpose_b")
    bias = None
    if c_name and b.is_const(c_name):
        c = b.constants[c_name]
        bias = c_name if beta == 1.0 else b.const_tensor(s.name + "/bias", beta * c)
    if b.is_const(b_name) and not b.is_const(a_name) and (bias or not c_name):
        w = b.constants[b_name]
        w_name = b_name if alpha == 1.0 else b.const_tensor(s.name + "/weight", alpha * w)
        b.emit("Gemm", [a_name, w_name] + ([bias] if bias else []), s.outputs[:1], s.name)
        return
    # general case: products of input-dependent operands, or an input-dependent bias
    _general_gemm(b, s, a_name, b_name, alpha, beta, bias)


def _general_gemm(b: Builder, s: Src, a_name: str, b_name: str, alpha: float, beta: float,
                  bias: str | None) -> None:
    """``alpha * (A @ B) + beta * C`` as MatMul, then Mul by alpha, then Add of the bias."""
    out, c_name = s.outputs[0], s.input(2)
    product = out if alpha == 1.0 and not c_name else f"{out}/matmul"
    b.emit("MatMul", [a_name, b_name], [product], s.name if product == out else f"{s.name}/matmul")
    if alpha != 1.0:
        scaled = out if not c_name else f"{out}/alpha"
        alpha_name = b.const_tensor(s.name + "/alpha", torch.tensor(alpha))
        b.emit("Mul", [product, alpha_name], [scaled], s.name if scaled == out else f"{s.name}/alpha")
        product = scaled
    if c_name:
        c_term = bias or c_name
        if bias is None and beta != 1.0:
            c_term = f"{out}/beta"
            beta_name = b.const_tensor(s.name + "/beta", torch.tensor(beta))
            b.emit("Mul", [c_name, beta_name], [c_term], f"{s.name}/beta")
        b.emit("Add", [product, c_term], [out], s.name)


def _transposed(b: Builder, s: Src, name: str, role: str) -> str:
    out = f"{s.outputs[0]}/{role}"
    b.emit("Transpose", [name], [out], f"{s.name}/{role}", perm=(1, 0))
    return out


def _norm_batchnorm(b: Builder, s: Src) -> None:
    if s.attr("training_mode", 0):
        raise b.error(s, "training-mode BatchNormalization is not supported")
    scale, bias, mean, var = (b.const(s, i, w).double() for i, w in
                              enumerate(("scale", "bias", "mean", "variance"), start=1))
    factor = scale / torch.sqrt(var + float(s.attr("epsilon", 1e-5)))
    shift = bias - mean * factor
    rank = len(b.shape(s.inputs[0]))
    view = (-1,) + (1,) * max(rank - 2, 0)
    dtype = b.constants[s.inputs[1]].dtype
    factor_name = b.const_tensor(s.name + "/scale", factor.reshape(view).to(dtype))
    shift_name = b.const_tensor(s.name + "/shift", shift.reshape(view).to(dtype))
    mid = f"{s.outputs[0]}/scaled"
    b.emit("Mul", [s.inputs[0], factor_name], [mid], f"{s.name}/scale")
    b.emit("Add", [mid, shift_name], s.outputs[:1], s.name)


def _norm_mul(b: Builder, s: Src) -> None:
    if s.inputs[0] == s.inputs[1] and not b.is_const(s.inputs[0]):
        b.emit("Pow", [s.inputs[0]], s.outputs[:1], s.name, exponent=2.0)
    else:
        _same(b, s)


def _norm_pow(b: Builder, s: Src) -> None:
    base, exponent = s.inputs[0], s.inputs[1]
    if b.is_const(exponent) and not b.is_const(base):
        e = b.constants[exponent]
        flat = e.reshape(-1)
        if flat.numel() >= 1 and e.dim() <= len(b.shape(base)) and bool((flat == flat[0]).all()) \
                and _broadcast(b.shape(base), tuple(e.shape)) == b.shape(base):
            b.emit("Pow", [base], s.outputs[:1], s.name, exponent=float(flat[0]))
            return
    _same(b, s)


def _broadcast(a: tuple[int, ...], c: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(a, c))


def _norm_sum(b: Builder, s: Src) -> None:
    if len(s.inputs) == 1:
        _alias(b, s)
        return
    prev = s.inputs[0]
    for k, name in enumerate(s.inputs[1:], start=1):
        last = k == len(s.inputs) - 1
        out = s.outputs[0] if last else f"{s.outputs[0]}/sum{k}"
        b.emit("Add", [prev, name], [out], s.name if last else f"{s.name}/sum{k}")
        prev = out


def _norm_variadic(b: Builder, s: Src) -> None:
    if len(s.inputs) == 1:
        _alias(b, s)
    else:
        _same(b, s)


def _norm_clip(b: Builder, s: Src) -> None:
    if b.opset < 11:
        low, high = s.attr("min"), s.attr("max")
    else:
        low_t, high_t = b.const(s, 1, "min"), b.const(s, 2, "max")
        low = None if low_t is None else float(low_t)
        high = None if high_t is None else float(high_t)
    if low is None and high is None:
        _alias(b, s)
        return
    b.emit("Clip", [s.inputs[0]], s.outputs[:1], s.name,
           min=None if low is None else float(low), max=None if high is None else float(high))


def _norm_softmax(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    rank = len(shape)
    axis = _axis(int(s.attr("axis", 1 if b.opset < 13 else -1)), rank)
    if b.opset >= 13 or axis == rank - 1:
        _same(b, s, axis=axis)
        return
    flat, soft = f"{s.outputs[0]}/flat", f"{s.outputs[0]}/softmax"
    b.emit("Reshape", [s.inputs[0]], [flat], f"{s.name}/flatten",
           shape=(math.prod(shape[:axis]), math.prod(shape[axis:])))
    b.emit(s.op_type, [flat], [soft], f"{s.name}/2d", axis=1)
    b.emit("Reshape", [soft], s.outputs[:1], s.name, shape=tuple(shape))


def _norm_axis(b: Builder, s: Src, default: int = 0) -> None:
    axis = _axis(int(s.attr("axis", default)), len(b.shape(s.inputs[0])))
    _same(b, s, axis=axis)


def _norm_gather(b: Builder, s: Src) -> None:
    if not b.is_const(s.inputs[1]):
        raise b.error(s, "input-dependent indices are not supported")
    _norm_axis(b, s)


def _norm_transpose(b: Builder, s: Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    perm = s.attr("perm") or list(reversed(range(rank)))
    _same(b, s, perm=tuple(int(p) for p in perm))


def _norm_reduce(b: Builder, s: Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    axes_in_input = s.op_type == "ReduceSum" and b.opset >= 13 or b.opset >= 18
    axes = _ints(b.const(s, 1, "axes")) if axes_in_input else tuple(s.attr("axes") or ())
    if not axes:
        if s.attr("noop_with_empty_axes", 0):
            _alias(b, s)
            return
        axes = tuple(range(rank))
    b.emit(s.op_type, [s.inputs[0]], s.outputs[:1], s.name,
           axes=tuple(sorted(_axis(a, rank) for a in axes)), keepdims=int(s.attr("keepdims", 1)))


def _norm_global_pool(b: Builder, s: Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    op = "ReduceMean" if s.op_type == "GlobalAveragePool" else "ReduceMax"
    b.emit(op, [s.inputs[0]], s.outputs[:1], s.name, axes=tuple(range(2, rank)), keepdims=1)


def _norm_slice(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    if b.opset < 10:
        starts, ends = tuple(s.attr("starts")), tuple(s.attr("ends"))
        axes, steps = s.attr("axes"), None
    else:
        starts, ends = _ints(b.const(s, 1, "starts")), _ints(b.const(s, 2, "ends"))
        axes, steps = b.const(s, 3, "axes"), b.const(s, 4, "steps")
        axes = None if axes is None else _ints(axes)
        steps = None if steps is None else _ints(steps)
    axes = tuple(range(len(starts))) if not axes else axes
    steps = steps or (1,) * len(starts)
    resolved = {}
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise b.error(s, "slice step 0")
        axis = _axis(int(axis), len(shape))
        begin, stop, step = slice(int(start), int(end), int(step)).indices(shape[axis])
        resolved[axis] = (begin, stop, step)
    ordered = sorted(resolved)
    b.emit("Slice", [s.inputs[0]], s.outputs[:1], s.name, axes=tuple(ordered),
           starts=tuple(resolved[a][0] for a in ordered),
           ends=tuple(resolved[a][1] for a in ordered),
           steps=tuple(resolved[a][2] for a in ordered))


def _norm_split(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    axis = _axis(int(s.attr("axis", 0)), len(shape))
    split = s.attr("split") if b.opset < 13 else _ints(b.const(s, 1, "split"))
    if not split:
        parts = len(s.outputs)
        size = -(-shape[axis] // parts)
        split = [min(size, shape[axis] - k * size) for k in range(parts)]
    b.emit("Split", [s.inputs[0]], s.outputs, s.name, axis=axis,
           split=tuple(int(v) for v in split))


def _norm_concat(b: Builder, s: Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    b.emit("Concat", s.inputs, s.outputs[:1], s.name, axis=_axis(int(s.attr("axis")), rank))


def _norm_expand(b: Builder, s: Src) -> None:
    target = _broadcast(b.shape(s.inputs[0]), _ints(b.const(s, 1, "shape")))
    b.emit("Expand", [s.inputs[0]], s.outputs[:1], s.name, shape=target)


def _norm_tile(b: Builder, s: Src) -> None:
    b.emit("Tile", [s.inputs[0]], s.outputs[:1], s.name, repeats=_ints(b.const(s, 1, "repeats")))


def _norm_pad(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    rank = len(shape)
    if b.opset < 11:
        pads, value = tuple(s.attr("pads") or s.attr("paddings")), float(s.attr("value", 0.0))
    else:
        pads = _ints(b.const(s, 1, "pads"))
        v = b.const(s, 2, "constant_value")
        value = 0.0 if v is None else float(v.reshape(-1)[0])
        axes = b.const(s, 3, "axes")
        if axes is not None:
            full = [0] * (2 * rank)
            for k, a in enumerate(_ints(axes)):
                a = _axis(a, rank)
                full[a], full[a + rank] = pads[k], pads[k + len(pads) // 2]
            pads = tuple(full)
    mode = s.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise b.error(s, f"pad mode {mode!r} is not supported")
    b.emit("Pad", [s.inputs[0]], s.outputs[:1], s.name, pads=tuple(int(p) for p in pads),
           mode=mode, value=value)


def _norm_resize(b: Builder, s: Src) -> None:
    shape = b.shape(s.inputs[0])
    mode = s.attr("mode", "nearest")
    if mode != "nearest":
        raise b.error(s, f"only nearest-neighbour resizing is supported, not {mode!r}")
    if s.op_type == "Upsample":
        scales = s.attr("scales") if b.opset < 9 else _ints_or_floats(b.const(s, 1, "scales"))
        ctm, nearest, sizes = "asymmetric", "floor", None
    else:
        scale_index = 1 if b.opset < 11 else 2
        scales = _ints_or_floats(b.const(s, scale_index, "scales"))
        sizes = _ints(b.const(s, 3, "sizes")) if b.opset >= 11 else ()
        ctm = s.attr("coordinate_transformation_mode", "asymmetric" if b.opset < 11 else "half_pixel")
        nearest = s.attr("nearest_mode", "round_prefer_floor")
    if sizes:
        out = tuple(sizes)
        scales = tuple(o / i for o, i in zip(out, shape))
    else:
        scales = tuple(float(v) for v in scales)
        out = tuple(int(math.floor(i * sc)) for i, sc in zip(shape, scales))
    b.emit("Resize", [s.inputs[0]], s.outputs[:1], s.name, scales=scales, output_shape=out,
           coordinate_transformation_mode=ctm, nearest_mode=nearest)


def _ints_or_floats(t: torch.Tensor | None) -> tuple[float, ...]:
    return () if t is None else tuple(float(v) for v in t.reshape(-1).tolist())


def _spatial_pads(b: Builder, s: Src, kernel: tuple[int, ...], strides: tuple[int, ...],
                  dilations: tuple[int, ...]) -> tuple[int, ...]:
    """Explicit ONNX pads (begin..., end...), ``auto_pad`` resolved."""
    n = len(kernel)
    auto = s.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", "") or auto is None:
        return tuple(int(p) for p in (s.attr("pads") or (0,) * (2 * n)))
    if auto == "VALID":
        return (0,) * (2 * n)
    spatial = b.shape(s.inputs[0])[2:]
    begin, end = [], []
    for size, k, st, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // st)
        total = max((out - 1) * st + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - small if auto == "SAME_UPPER" else small)
    return tuple(begin + end)


def _norm_conv(b: Builder, s: Src) -> None:
    w = b.const(s, 1, "weight")
    b.const(s, 2, "bias")
    n = w.dim() - 2
    kernel = tuple(s.attr("kernel_shape") or w.shape[2:])
    strides = tuple(s.attr("strides") or (1,) * n)
    dilations = tuple(s.attr("dilations") or (1,) * n)
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations,
                 group=int(s.attr("group", 1)))
    if s.op_type == "Conv":
        attrs["pads"] = _spatial_pads(b, s, kernel, strides, dilations)
    else:
        attrs["output_padding"] = tuple(s.attr("output_padding") or (0,) * n)
        attrs["pads"] = _transpose_pads(b, s, attrs)
    _same(b, s, **attrs)


def _transpose_pads(b: Builder, s: Src, attrs: dict) -> tuple[int, ...]:
    output_shape = s.attr("output_shape")
    auto = s.attr("auto_pad", "NOTSET")
    n = len(attrs["kernel_shape"])
    if not output_shape and auto in ("NOTSET", "", None, "VALID"):
        return tuple(int(p) for p in (s.attr("pads") or (0,) * (2 * n)))
    spatial = b.shape(s.inputs[0])[2:]
    if not output_shape:
        output_shape = [size * st for size, st in zip(spatial, attrs["strides"])]
    output_shape = list(output_shape)[-n:]
    begin, end = [], []
    for i in range(n):
        k, st, d = attrs["kernel_shape"][i], attrs["strides"][i], attrs["dilations"][i]
        total = st * (spatial[i] - 1) + attrs["output_padding"][i] + (k - 1) * d + 1 - output_shape[i]
        small = total // 2
        begin.append(total - small if auto == "SAME_UPPER" else small)
        end.append(small if auto == "SAME_UPPER" else total - small)
    return tuple(begin + end)


def _norm_pool(b: Builder, s: Src) -> None:
    if len(s.outputs) > 1 and s.outputs[1]:
        raise b.error(s, "MaxPool's indices output is not supported")
    kernel = tuple(s.attr("kernel_shape"))
    n = len(kernel)
    strides = tuple(s.attr("strides") or (1,) * n)
    dilations = tuple(s.attr("dilations") or (1,) * n)
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations,
                 pads=_spatial_pads(b, s, kernel, strides, dilations),
                 ceil_mode=int(s.attr("ceil_mode", 0)))
    if s.op_type == "AveragePool":
        if any(d != 1 for d in dilations):
            raise b.error(s, "dilated AveragePool is not supported")
        attrs["count_include_pad"] = int(s.attr("count_include_pad", 0))
    _same(b, s, **attrs)


def _norm_layer_norm(b: Builder, s: Src) -> None:
    if any(s.outputs[1:]):
        raise b.error(s, "the Mean/InvStdDev outputs are not supported")
    b.const(s, 1, "scale")
    b.const(s, 2, "bias")
    rank = len(b.shape(s.inputs[0]))
    b.emit(s.op_type, s.inputs, s.outputs[:1], s.name,
           axis=_axis(int(s.attr("axis", -1)), rank), epsilon=float(s.attr("epsilon", 1e-5)))


def _with_defaults(**defaults: object) -> Callable[[Builder, Src], None]:
    def normalise(b: Builder, s: Src) -> None:
        attrs = {k: type(v)(s.attr(k, v)) for k, v in defaults.items()}
        _same(b, s, **attrs)
    return normalise


def _norm_range(b: Builder, s: Src) -> None:
    for i, what in enumerate(("start", "limit", "delta")):
        b.const(s, i, what)
    _same(b, s)


_PLAIN = ["Add", "Sub", "Div", "MatMul", "Equal", "Less", "LessOrEqual", "Greater",
          "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where", "Neg", "Relu", "Sigmoid", "Tanh",
          "Sin", "Cos", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Sign", "Floor", "Ceil", "Erf",
          "Softplus", "Softsign", "HardSwish", "Atan", "Mish"]

NORMALISERS: dict[str, Callable[[Builder, Src], None]] = {
    **{op: _same for op in _PLAIN},
    "Identity": _alias, "Dropout": _alias, "Cast": _norm_cast, "PRelu": _norm_prelu,
    "Reshape": _norm_reshape, "Flatten": _norm_flatten,
    "Squeeze": _norm_squeeze, "Unsqueeze": _norm_unsqueeze,
    "Shape": _norm_shape, "Size": _norm_size, "ConstantOfShape": _norm_constant_of_shape,
    "Range": _norm_range,
    "Gemm": _norm_gemm, "BatchNormalization": _norm_batchnorm,
    "Mul": _norm_mul, "Pow": _norm_pow, "Sum": _norm_sum,
    "Max": _norm_variadic, "Min": _norm_variadic, "Clip": _norm_clip,
    "LeakyRelu": _with_defaults(alpha=0.01), "Elu": _with_defaults(alpha=1.0),
    "HardSigmoid": _with_defaults(alpha=0.2, beta=0.5), "Gelu": _with_defaults(approximate="none"),
    "Celu": _with_defaults(alpha=1.0),
    "Selu": _with_defaults(alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    "Shrink": _with_defaults(bias=0.0, lambd=0.5), "ThresholdedRelu": _with_defaults(alpha=1.0),
    "Softmax": _norm_softmax, "LogSoftmax": _norm_softmax,
    "Gather": _norm_gather, "Transpose": _norm_transpose, "Concat": _norm_concat,
    "Slice": _norm_slice, "Split": _norm_split, "Expand": _norm_expand, "Tile": _norm_tile,
    "Pad": _norm_pad, "Upsample": _norm_resize, "Resize": _norm_resize,
    "ReduceSum": _norm_reduce, "ReduceMean": _norm_reduce, "ReduceMax": _norm_reduce,
    "ReduceMin": _norm_reduce,
    "GlobalAveragePool": _norm_global_pool, "GlobalMaxPool": _norm_global_pool,
    "Conv": _norm_conv, "ConvTranspose": _norm_conv,
    "MaxPool": _norm_pool, "AveragePool": _norm_pool,
    "LayerNormalization": _norm_layer_norm,
    **RECURRENT_NORMALISERS,
}
