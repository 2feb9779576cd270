"""ONNX model -> ``Graph``: validation, constant folding, static shapes and op normalisation.

What later stages see (the normalised IR; ``verifier.forward.FORWARD`` evaluates every op):

* Only nodes that depend on the network input, in topological order; everything computable
  from constants and static shapes (``Shape``, ``ConstantOfShape``, ``Equal``/``Where``/``Expand``
  chains, ...) is folded into ``Graph.constants``.  ``Graph.shapes`` holds every tensor's static
  ONNX shape (symbolic batch dimensions resolved to 1).
* ``Identity``, ``Dropout`` and float-to-float ``Cast`` are removed (their output aliases the input).
* ``Flatten``, ``Squeeze``, ``Unsqueeze`` and ``Reshape`` become ``Reshape(shape=<static target>)``.
* Parameter inputs move into attributes as plain Python values, axes are non-negative w.r.t. the
  ONNX rank, and opset differences are gone (see ``_NORMALISERS`` for each op's attributes).
* ``BatchNormalization`` becomes ``Mul`` then ``Add`` by per-channel constants;
  ``GlobalAveragePool``/``GlobalMaxPool`` become ``ReduceMean``/``ReduceMax``; ``Upsample``
  becomes ``Resize``; ``Sum`` becomes a chain of ``Add``; opset < 13 ``Softmax`` on a non-last
  axis becomes ``Reshape`` -> ``Softmax`` (last axis) -> ``Reshape``.
* ``Gemm(x, W[, b])`` computes ``x @ W + b`` with ``W`` a constant ``(in, out)``; a Gemm whose
  second operand depends on the input becomes ``MatMul`` (+ ``Mul``/``Add``).
* ``Mul(x, x)`` and ``Pow(x, c)`` with one constant exponent become ``Pow(x)`` with attribute
  ``exponent`` (a float).  ``Sub``/``Div`` by constants stay, with a constant input.
* Node names are ONNX's; an empty one gets a generated unique name, and nodes created by a
  rewrite are named ``<onnx name>/<role>``.
"""
from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from verifier.errors import ModelError, UnsupportedOpError
from verifier.forward import FORWARD
from verifier.graph import Graph, Node

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
_DTYPE_NAMES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float32", onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool", onnx.TensorProto.UINT16: "int64",
    onnx.TensorProto.UINT32: "int64", onnx.TensorProto.UINT64: "int64",
}


# -- reading ------------------------------------------------------------------------------------
def read_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX protobuf of ``model`` (``.onnx`` or ``.onnx.gz``), unvalidated; raises
    ``ModelError`` for missing, unreadable or empty files."""
    return _read(model)[0]


def _read(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    if isinstance(model, onnx.ModelProto):
        return model, None
    path = Path(model)
    where = str(path)
    if not path.exists():
        raise ModelError(where, "no such file; check the path to the ONNX model")
    if path.is_dir():
        raise ModelError(where, "is a directory, not an ONNX file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                proto = onnx.load_from_string(handle.read())
        else:
            proto = onnx.load(str(path))
    except (DecodeError, OSError, EOFError, ValueError, RuntimeError) as err:
        raise ModelError(where, f"cannot be read as an ONNX model (truncated or not ONNX: "
                                f"{type(err).__name__}: {err})") from err
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelError(where, "cannot be read as an ONNX model: it holds no graph nodes "
                                "(empty, truncated or not an ONNX file)")
    return proto, where


def tensor_to_torch(proto: onnx.TensorProto, where: str | None = None) -> torch.Tensor:
    """An ONNX tensor as a torch tensor (float16 widened to float32, unsigned to int64)."""
    if proto.data_type not in _DTYPE_NAMES:
        raise ModelError(where, f"tensor {proto.name!r} has an unsupported element type "
                                f"{onnx.TensorProto.DataType.Name(proto.data_type)}")
    array = numpy_helper.to_array(proto)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype in (np.uint16, np.uint32, np.uint64):
        array = array.astype(np.int64)
    return torch.from_numpy(np.array(array, copy=True))


def _default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def _declared_shape(value_info: onnx.ValueInfoProto) -> list[int | None] | None:
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None
            for d in t.tensor_type.shape.dim]


def _input_shape(value_info: onnx.ValueInfoProto, where: str | None) -> tuple[int, ...]:
    """Declared input shape; a symbolic first dimension (the batch) counts as 1."""
    t = value_info.type
    if not t.HasField("tensor_type") or t.tensor_type.elem_type not in _FLOAT_TYPES:
        raise ModelError(where, f"the input {value_info.name!r} must be a float tensor")
    dims = _declared_shape(value_info)
    if dims is None:
        raise ModelError(where, f"the input {value_info.name!r} declares no shape; genbab needs "
                                "static input shapes")
    shape = [1 if (d is None or d == 0) and i == 0 and len(dims) > 1 else d
             for i, d in enumerate(dims)]
    if len(dims) == 1 and dims[0] is None:
        shape = [1]
    if any(d is None or d <= 0 for d in shape):
        raise ModelError(where, f"the input {value_info.name!r} has dynamic dimensions "
                                f"{_format_dims(value_info)}; only the first (batch) dimension may "
                                "be symbolic.  Export the model with static shapes.")
    return tuple(int(d) for d in shape)


def _format_dims(value_info: onnx.ValueInfoProto) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "[" + ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                           for d in dims) + "]"


# -- model-level checks ----------------------------------------------------------------------
def _check_finite(proto: onnx.ModelProto, constants: dict[str, torch.Tensor],
                  where: str | None) -> None:
    bad = [name for name, t in constants.items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    for node in proto.graph.node:
        if node.op_type == "Constant":
            value = _constant_value(node, where)
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad.append(node.output[0])
    if bad:
        raise ModelError(where, f"weights contain NaN or infinity: {', '.join(sorted(bad)[:10])}"
                                f"{' ...' if len(bad) > 10 else ''}; the model is unusable as is")


def _check_ops(proto: onnx.ModelProto, where: str | None) -> None:
    unsupported: dict[str, list[str]] = {}
    for i, node in enumerate(proto.graph.node):
        domain_ok = node.domain in ("", "ai.onnx")
        if not domain_ok or node.op_type not in SUPPORTED_ONNX_OPS:
            label = node.op_type if domain_ok else f"{node.domain}.{node.op_type}"
            unsupported.setdefault(label, []).append(node.name or f"#{i}")
    if unsupported:
        raise UnsupportedOpError(where, unsupported, sorted(SUPPORTED_ONNX_OPS))


def _topological_order(proto: onnx.ModelProto, available: set[str],
                       where: str | None) -> list[onnx.NodeProto]:
    """Nodes in an order where every input is computed first (stable w.r.t. file order)."""
    pending = list(proto.graph.node)
    known = set(available) | {""}
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in known for name in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({n for node in rest for n in node.input if n not in known})
            raise ModelError(where, f"the graph has a cycle or reads undefined tensors "
                                    f"{missing[:5]} (node {rest[0].name!r}, {rest[0].op_type})")
        pending = rest
    return ordered


def _constant_value(node: onnx.NodeProto, where: str | None) -> torch.Tensor:
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if attr.name == "value":
            return tensor_to_torch(value, where)
        if attr.name in ("value_float", "value_floats"):
            return torch.tensor(value, dtype=torch.float32)
        if attr.name in ("value_int", "value_ints"):
            return torch.tensor(value, dtype=torch.int64)
    raise ModelError(where, f"Constant node {node.name!r} has no supported value attribute")


# -- the builder ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Src:
    """One ONNX node, inputs resolved through aliases, attributes as Python values."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict

    def attr(self, key: str, default: object = None) -> object:
        value = self.attrs.get(key, default)
        return value.decode() if isinstance(value, bytes) else value

    def input(self, i: int) -> str:
        return self.inputs[i] if i < len(self.inputs) else ""


class _Builder:
    """Accumulates constants, aliases, shapes and perturbed nodes while the ONNX nodes are
    visited in topological order.  Perturbed nodes are also run once on a zero input of batch
    one (``probe``) to learn their static shapes."""

    def __init__(self, where: str | None, opset: int, constants: dict[str, torch.Tensor],
                 input_name: str, input_shape: tuple[int, ...], taken_names: set[str],
                 input_dtype: torch.dtype = torch.float32):
        self.where = where
        self.opset = opset
        self.constants = dict(constants)
        self.shapes = {name: tuple(t.shape) for name, t in constants.items()}
        self.shapes[input_name] = input_shape
        self.aliases: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.probe = {input_name: torch.zeros((1, *input_shape), dtype=input_dtype)}
        self.taken = set(taken_names)
        self.counter = 0

    # names, values and shapes
    def resolve(self, name: str) -> str:
        while name in self.aliases:
            name = self.aliases[name]
        return name

    def unique_name(self, op_type: str) -> str:
        while True:
            self.counter += 1
            name = f"{op_type}_{self.counter}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def const(self, src: _Src, i: int, what: str) -> torch.Tensor | None:
        """The constant value of input ``i`` (None when omitted); an error if input-dependent."""
        name = src.input(i)
        if not name:
            return None
        if name not in self.constants:
            raise self.error(src, f"its {what} input {name!r} depends on the network input; "
                                  "genbab needs it to be a constant")
        return self.constants[name]

    def error(self, src: _Src, problem: str) -> ModelError:
        return ModelError(self.where, f"node {src.name!r} ({src.op_type}): {problem}")

    def alias(self, output: str, source: str) -> None:
        self.aliases[output] = source

    def set_constant(self, name: str, value: torch.Tensor) -> None:
        self.constants[name] = value
        self.shapes[name] = tuple(value.shape)

    # emitting nodes
    def emit(self, op_type: str, inputs: list[str] | tuple[str, ...], outputs: list[str] | tuple[str, ...],
             name: str, **attrs: object) -> None:
        node = Node(name, op_type, tuple(inputs), tuple(outputs), attrs)
        present = [n for n in node.inputs if n]
        if all(n in self.constants for n in present):
            args = [self.constants[n] if n else None for n in node.inputs]
            values = FORWARD[op_type](node, args, [False] * len(args))
            for out, value in zip(node.outputs, values):
                self.set_constant(out, value.contiguous())
            return
        args, batched = [], []
        for n in node.inputs:
            batched.append(n in self.probe)
            args.append(self.probe[n] if n in self.probe else self.constants.get(n))
        values = FORWARD[op_type](node, args, batched)
        for out, value in zip(node.outputs, values):
            self.probe[out] = value
            self.shapes[out] = tuple(value.shape[1:])
        self.nodes.append(node)

    def const_tensor(self, base: str, value: torch.Tensor) -> str:
        """Register a new constant named after ``base``; returns its name."""
        name, k = f"{base}/const", 0
        while name in self.constants or name in self.shapes:
            k += 1
            name = f"{base}/const{k}"
        self.set_constant(name, value)
        return name

    def finish(self, input_name: str, output_name: str, onnx_output_shape: tuple[int, ...],
               source: str | None) -> Graph:
        output = self.resolve(output_name)
        if output not in self.probe:
            raise ModelError(self.where, f"the output {output_name!r} does not depend on the input")
        nodes = _live_nodes(self.nodes, output)
        used = {n for node in nodes for n in node.inputs}
        constants = {n: t for n, t in self.constants.items() if n in used}
        names = used | {n for node in nodes for n in node.outputs} | {input_name}
        shapes = {n: s for n, s in self.shapes.items() if n in names}
        return Graph(input_name=input_name, output_name=output, nodes=tuple(nodes),
                     constants=constants, shapes=shapes, source=source,
                     onnx_input_shape=self.shapes[input_name],
                     onnx_output_shape=onnx_output_shape)


def _live_nodes(nodes: list[Node], output: str) -> list[Node]:
    """Drop nodes that do not contribute to the output."""
    needed = {output}
    live = []
    for node in reversed(nodes):
        if needed.intersection(node.outputs):
            live.append(node)
            needed.update(node.inputs)
    return live[::-1]


# -- normalisers ----------------------------------------------------------------------------
def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _ints(t: torch.Tensor | None) -> tuple[int, ...]:
    return () if t is None else tuple(int(v) for v in t.reshape(-1).tolist())


def _same(b: _Builder, s: _Src, op_type: str | None = None, **attrs: object) -> None:
    b.emit(op_type or s.op_type, s.inputs, s.outputs[:1], s.name, **attrs)


def _alias(b: _Builder, s: _Src) -> None:
    b.alias(s.outputs[0], s.inputs[0])


def _reshape_to(b: _Builder, s: _Src, shape: tuple[int, ...]) -> None:
    b.emit("Reshape", [s.inputs[0]], s.outputs[:1], s.name, shape=tuple(shape))


def _norm_reshape(b: _Builder, s: _Src) -> None:
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


def _norm_flatten(b: _Builder, s: _Src) -> None:
    shape = b.shape(s.inputs[0])
    axis = _axis(int(s.attr("axis", 1)), len(shape))
    _reshape_to(b, s, (math.prod(shape[:axis]), math.prod(shape[axis:])))


def _norm_squeeze(b: _Builder, s: _Src) -> None:
    shape = b.shape(s.inputs[0])
    axes = s.attr("axes") if b.opset < 13 else _ints(b.const(s, 1, "axes"))
    axes = {_axis(a, len(shape)) for a in axes or [i for i, d in enumerate(shape) if d == 1]}
    _reshape_to(b, s, tuple(d for i, d in enumerate(shape) if i not in axes))


def _norm_unsqueeze(b: _Builder, s: _Src) -> None:
    shape = list(b.shape(s.inputs[0]))
    axes = s.attr("axes") if b.opset < 13 else _ints(b.const(s, 1, "axes"))
    rank = len(shape) + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    _reshape_to(b, s, tuple(shape))


def _norm_constant(b: _Builder, s: _Src, node: onnx.NodeProto) -> None:
    b.set_constant(s.outputs[0], _constant_value(node, b.where))


def _norm_shape(b: _Builder, s: _Src) -> None:
    shape = b.shape(s.inputs[0])
    start, end = int(s.attr("start", 0)), s.attr("end")
    b.set_constant(s.outputs[0], torch.tensor(shape[start:end], dtype=torch.int64))


def _norm_size(b: _Builder, s: _Src) -> None:
    b.set_constant(s.outputs[0], torch.tensor(math.prod(b.shape(s.inputs[0])), dtype=torch.int64))


def _norm_constant_of_shape(b: _Builder, s: _Src) -> None:
    b.const(s, 0, "shape")
    value = s.attrs.get("value")
    tensor = tensor_to_torch(value, b.where) if value is not None else torch.zeros(1)
    dtype = str(tensor.dtype).replace("torch.", "")
    b.emit("ConstantOfShape", s.inputs, s.outputs, s.name,
           value=tensor.reshape(-1)[0].item(), dtype=dtype)


def _norm_cast(b: _Builder, s: _Src) -> None:
    to = _DTYPE_NAMES.get(int(s.attr("to")))
    if to is None:
        raise b.error(s, f"cast to unsupported type {s.attr('to')}")
    if not b.is_const(s.inputs[0]):
        if to not in ("float32", "float64"):
            raise b.error(s, f"casts an input-dependent tensor to {to}")
        _alias(b, s)
        return
    _same(b, s, to=to)


def _norm_gemm(b: _Builder, s: _Src) -> None:
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


def _general_gemm(b: _Builder, s: _Src, a_name: str, b_name: str, alpha: float, beta: float,
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


def _transposed(b: _Builder, s: _Src, name: str, role: str) -> str:
    out = f"{s.outputs[0]}/{role}"
    b.emit("Transpose", [name], [out], f"{s.name}/{role}", perm=(1, 0))
    return out


def _norm_batchnorm(b: _Builder, s: _Src) -> None:
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


def _norm_mul(b: _Builder, s: _Src) -> None:
    if s.inputs[0] == s.inputs[1] and not b.is_const(s.inputs[0]):
        b.emit("Pow", [s.inputs[0]], s.outputs[:1], s.name, exponent=2.0)
    else:
        _same(b, s)


def _norm_pow(b: _Builder, s: _Src) -> None:
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


def _norm_sum(b: _Builder, s: _Src) -> None:
    if len(s.inputs) == 1:
        _alias(b, s)
        return
    prev = s.inputs[0]
    for k, name in enumerate(s.inputs[1:], start=1):
        last = k == len(s.inputs) - 1
        out = s.outputs[0] if last else f"{s.outputs[0]}/sum{k}"
        b.emit("Add", [prev, name], [out], s.name if last else f"{s.name}/sum{k}")
        prev = out


def _norm_variadic(b: _Builder, s: _Src) -> None:
    if len(s.inputs) == 1:
        _alias(b, s)
    else:
        _same(b, s)


def _norm_clip(b: _Builder, s: _Src) -> None:
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


def _norm_softmax(b: _Builder, s: _Src) -> None:
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


def _norm_axis(b: _Builder, s: _Src, default: int = 0) -> None:
    axis = _axis(int(s.attr("axis", default)), len(b.shape(s.inputs[0])))
    _same(b, s, axis=axis)


def _norm_gather(b: _Builder, s: _Src) -> None:
    if not b.is_const(s.inputs[1]):
        raise b.error(s, "input-dependent indices are not supported")
    _norm_axis(b, s)


def _norm_transpose(b: _Builder, s: _Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    perm = s.attr("perm") or list(reversed(range(rank)))
    _same(b, s, perm=tuple(int(p) for p in perm))


def _norm_reduce(b: _Builder, s: _Src) -> None:
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


def _norm_global_pool(b: _Builder, s: _Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    op = "ReduceMean" if s.op_type == "GlobalAveragePool" else "ReduceMax"
    b.emit(op, [s.inputs[0]], s.outputs[:1], s.name, axes=tuple(range(2, rank)), keepdims=1)


def _norm_slice(b: _Builder, s: _Src) -> None:
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


def _norm_split(b: _Builder, s: _Src) -> None:
    shape = b.shape(s.inputs[0])
    axis = _axis(int(s.attr("axis", 0)), len(shape))
    split = s.attr("split") if b.opset < 13 else _ints(b.const(s, 1, "split"))
    if not split:
        parts = len(s.outputs)
        size = -(-shape[axis] // parts)
        split = [min(size, shape[axis] - k * size) for k in range(parts)]
    b.emit("Split", [s.inputs[0]], s.outputs, s.name, axis=axis,
           split=tuple(int(v) for v in split))


def _norm_concat(b: _Builder, s: _Src) -> None:
    rank = len(b.shape(s.inputs[0]))
    b.emit("Concat", s.inputs, s.outputs[:1], s.name, axis=_axis(int(s.attr("axis")), rank))


def _norm_expand(b: _Builder, s: _Src) -> None:
    target = _broadcast(b.shape(s.inputs[0]), _ints(b.const(s, 1, "shape")))
    b.emit("Expand", [s.inputs[0]], s.outputs[:1], s.name, shape=target)


def _norm_tile(b: _Builder, s: _Src) -> None:
    b.emit("Tile", [s.inputs[0]], s.outputs[:1], s.name, repeats=_ints(b.const(s, 1, "repeats")))


def _norm_pad(b: _Builder, s: _Src) -> None:
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


def _norm_resize(b: _Builder, s: _Src) -> None:
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


def _spatial_pads(b: _Builder, s: _Src, kernel: tuple[int, ...], strides: tuple[int, ...],
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


def _norm_conv(b: _Builder, s: _Src) -> None:
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


def _transpose_pads(b: _Builder, s: _Src, attrs: dict) -> tuple[int, ...]:
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


def _norm_pool(b: _Builder, s: _Src) -> None:
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


def _norm_layer_norm(b: _Builder, s: _Src) -> None:
    if any(s.outputs[1:]):
        raise b.error(s, "the Mean/InvStdDev outputs are not supported")
    b.const(s, 1, "scale")
    b.const(s, 2, "bias")
    rank = len(b.shape(s.inputs[0]))
    b.emit(s.op_type, s.inputs, s.outputs[:1], s.name,
           axis=_axis(int(s.attr("axis", -1)), rank), epsilon=float(s.attr("epsilon", 1e-5)))


def _with_defaults(**defaults: object) -> Callable[[_Builder, _Src], None]:
    def normalise(b: _Builder, s: _Src) -> None:
        attrs = {k: type(v)(s.attr(k, v)) for k, v in defaults.items()}
        _same(b, s, **attrs)
    return normalise


def _norm_range(b: _Builder, s: _Src) -> None:
    for i, what in enumerate(("start", "limit", "delta")):
        b.const(s, i, what)
    _same(b, s)


_PLAIN = ["Add", "Sub", "Div", "MatMul", "Equal", "Less", "LessOrEqual", "Greater",
          "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where", "Neg", "Relu", "Sigmoid", "Tanh",
          "Sin", "Cos", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Sign", "Floor", "Ceil", "Erf",
          "Softplus", "Softsign"]

_NORMALISERS: dict[str, Callable[[_Builder, _Src], None]] = {
    **{op: _same for op in _PLAIN},
    "Identity": _alias, "Dropout": _alias, "Cast": _norm_cast,
    "Reshape": _norm_reshape, "Flatten": _norm_flatten,
    "Squeeze": _norm_squeeze, "Unsqueeze": _norm_unsqueeze,
    "Shape": _norm_shape, "Size": _norm_size, "ConstantOfShape": _norm_constant_of_shape,
    "Range": _norm_range,
    "Gemm": _norm_gemm, "BatchNormalization": _norm_batchnorm,
    "Mul": _norm_mul, "Pow": _norm_pow, "Sum": _norm_sum,
    "Max": _norm_variadic, "Min": _norm_variadic, "Clip": _norm_clip,
    "LeakyRelu": _with_defaults(alpha=0.01), "Elu": _with_defaults(alpha=1.0),
    "HardSigmoid": _with_defaults(alpha=0.2, beta=0.5), "Gelu": _with_defaults(approximate="none"),
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
}

SUPPORTED_ONNX_OPS: frozenset[str] = frozenset(_NORMALISERS) | {"Constant"}


# -- entry point ---------------------------------------------------------------------------
def load_model(model: str | Path | onnx.ModelProto) -> Graph:
    """Load, validate and normalise an ONNX model (``.onnx`` or ``.onnx.gz``).

    Raises ``ModelError`` for files that cannot be used (missing, truncated, several inputs or
    outputs, dynamic non-batch dimensions, NaN/inf weights, input-dependent shape parameters) and
    ``UnsupportedOpError`` listing every unsupported operator at once.
    """
    proto, where = _read(model)
    g = proto.graph
    initializers = {init.name: tensor_to_torch(init, where) for init in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(where, f"genbab needs exactly one network input, the model has "
                                f"{len(inputs)}: {[i.name for i in inputs]}")
    if len(g.output) != 1:
        raise ModelError(where, f"genbab needs exactly one network output, the model has "
                                f"{len(g.output)}: {[o.name for o in g.output]}")
    input_name = inputs[0].name
    input_shape = _input_shape(inputs[0], where)
    _check_ops(proto, where)
    _check_finite(proto, initializers, where)
    ordered = _topological_order(proto, set(initializers) | {input_name}, where)
    taken = {node.name for node in g.node if node.name}
    input_dtype = (torch.float64 if inputs[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
                   else torch.float32)
    builder = _Builder(where, _default_opset(proto), initializers, input_name, input_shape, taken,
                       input_dtype)
    for node in ordered:
        _visit(builder, node)
    output = g.output[0].name
    declared = _declared_shape(g.output[0])
    computed = builder.shapes.get(builder.resolve(output), ())
    if declared is None or len(declared) != len(computed):
        onnx_output_shape = tuple(computed)
    else:
        onnx_output_shape = tuple(d if d else c for d, c in zip(declared, computed))
    return builder.finish(input_name, output, onnx_output_shape, where)


def _visit(b: _Builder, node: onnx.NodeProto) -> None:
    name = node.name or b.unique_name(node.op_type)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    src = _Src(name, node.op_type, tuple(b.resolve(n) if n else "" for n in node.input),
               tuple(node.output), attrs)
    for n in src.inputs:
        if n and n not in b.shapes:
            raise b.error(src, f"reads tensor {n!r}, which no earlier node computes")
    try:
        if node.op_type == "Constant":
            _norm_constant(b, src, node)
        else:
            _NORMALISERS[node.op_type](b, src)
    except ModelError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as err:
        raise b.error(src, f"cannot be evaluated on its static shapes "
                           f"{[b.shapes.get(n) for n in src.inputs]}: {err}") from err
