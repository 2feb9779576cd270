"""ONNX model -> ``Graph``: validation, constant folding, static shapes and op normalisation.

What later stages see (the normalised IR; ``verifier.forward.FORWARD`` evaluates every op):

* Only nodes that depend on the network input, in topological order; everything computable
  from constants and static shapes (``Shape``, ``ConstantOfShape``, ``Equal``/``Where``/``Expand``
  chains, ...) is folded into ``Graph.constants``: by our own forward where it has the op, and
  by the ``onnx`` reference evaluator for any other standard op (``verifier.onnx_fold``), so
  shape arithmetic never needs a new op.  ``Graph.shapes`` holds every tensor's static
  ONNX shape (symbolic batch dimensions resolved to 1).
* ``Identity``, ``Dropout`` and float-to-float ``Cast`` are removed (their output aliases the input).
* ``Flatten``, ``Squeeze``, ``Unsqueeze`` and ``Reshape`` become ``Reshape(shape=<static target>)``.
* Parameter inputs move into attributes as plain Python values, axes are non-negative w.r.t. the
  ONNX rank, and opset differences are gone (see ``verifier.onnx_normalise.NORMALISERS`` for each op's attributes).
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
from pathlib import Path

import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper

from genbab.verifier.errors import ModelError, UnsupportedOpError
from genbab.verifier.graph import Graph
from genbab.verifier.onnx_builder import Builder, Src, tensor_to_torch
from genbab.verifier.onnx_fold import fold_node
from genbab.verifier.onnx_normalise import NORMALISERS

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


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


def _validate(proto: onnx.ModelProto, where: str | None) -> None:
    """Reject what onnxruntime would reject, before normalising: a verdict on a model the
    official checker cannot run means nothing, and no counterexample could be confirmed.
    Fuzzing found three such kinds loading silently (benchmarks/soundness/fuzz.py): two nodes
    writing one tensor, attributes an op does not have, ops that do not exist at the model's
    opset or an opset newer than any onnx knows.
    Each node is checked against its schema (``onnx.checker.check_node``); the whole-model
    checker is not used, as it also refuses models onnxruntime runs (value infos without a
    shape, common in hand-built and older exported models)."""
    opset, newest = _default_opset(proto), onnx.defs.onnx_opset_version()
    if not 1 <= opset <= newest:
        raise ModelError(where, f"declares opset {opset} of the default ONNX domain; this "
                                f"onnx knows opsets 1 to {newest}")
    g = proto.graph
    written = {i.name for i in g.input} | {i.name for i in g.initializer}
    context = onnx.checker.C.CheckerContext()
    context.ir_version = proto.ir_version
    context.opset_imports = {o.domain: o.version for o in proto.opset_import}
    for node in g.node:
        twice = [name for name in node.output if name and name in written]
        if twice:
            raise ModelError(where, f"node {node.name or node.op_type!r} writes tensor "
                                    f"{twice[0]!r}, which another node or input already holds")
        written.update(node.output)
        if not onnx.defs.has(node.op_type, node.domain or ""):
            continue   # no schema at all: the loader's UnsupportedOpError lists every such op
        try:
            onnx.checker.check_node(node, context)
        except onnx.checker.ValidationError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(where, f"node {node.name or node.op_type!r} ({node.op_type}) is not "
                                    f"valid ONNX: {first[:300]}") from err


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
    # an explicit 0 is not symbolic: onnxruntime would refuse a batch of one
    shape = [1 if d is None and i == 0 and len(dims) > 1 else d for i, d in enumerate(dims)]
    if len(dims) == 1 and dims[0] is None:
        shape = [1]
    if 0 in shape:
        raise ModelError(where, f"the input {value_info.name!r} has an empty dimension "
                                f"{_format_dims(value_info)}: onnxruntime runs it on no data")
    if any(d is None or d <= 0 for d in shape):
        raise ModelError(where, f"the input {value_info.name!r} has dynamic dimensions "
                                f"{_format_dims(value_info)}; only the first (batch) dimension may "
                                "be symbolic.  Export the model with static shapes.")
    size = math.prod(int(d) for d in shape)
    if size > MAX_INPUT_ELEMENTS:
        raise ModelError(where, f"the input {value_info.name!r} has {size:,} elements "
                                f"({_format_dims(value_info)}); genbab handles at most "
                                f"{MAX_INPUT_ELEMENTS:,}, and every attack point or box holds "
                                "one copy")
    return tuple(int(d) for d in shape)


MAX_INPUT_ELEMENTS = 1 << 24   # 16.8 M: 100x the largest VNN-COMP input; a 1e9-element input
# (fuzzing) spent 10 s allocating before the shape check failed


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


def _norm_constant(b: Builder, s: Src, node: onnx.NodeProto) -> None:
    b.set_constant(s.outputs[0], _constant_value(node, b.where))


SUPPORTED_ONNX_OPS: frozenset[str] = frozenset(NORMALISERS) | {"Constant"}


# -- entry point ---------------------------------------------------------------------------
def load_model(model: str | Path | onnx.ModelProto) -> Graph:
    """Load, validate and normalise an ONNX model (``.onnx`` or ``.onnx.gz``).

    Raises ``ModelError`` for files that cannot be used (missing, truncated, several inputs or
    outputs, dynamic non-batch dimensions, NaN/inf weights, input-dependent shape parameters) and
    ``UnsupportedOpError`` listing every unsupported operator at once.
    """
    proto, where = _read(model)
    _validate(proto, where)
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
    _check_finite(proto, initializers, where)
    ordered = _topological_order(proto, set(initializers) | {input_name}, where)
    taken = {node.name for node in g.node if node.name}
    input_dtype = (torch.float64 if inputs[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
                   else torch.float32)
    builder = Builder(where, _default_opset(proto), initializers, input_name, input_shape, taken,
                       input_dtype)
    for node in ordered:
        _visit(builder, node)
    if builder.unsupported:
        raise UnsupportedOpError(where, builder.unsupported, sorted(SUPPORTED_ONNX_OPS))
    output = g.output[0].name
    declared = _declared_shape(g.output[0])
    computed = builder.shapes.get(builder.resolve(output), ())
    if declared is None or len(declared) != len(computed):
        onnx_output_shape = tuple(computed)
    else:
        onnx_output_shape = tuple(d if d else c for d, c in zip(declared, computed))
    return builder.finish(input_name, output, onnx_output_shape, where)


def _visit(b: Builder, node: onnx.NodeProto) -> None:
    """Normalise one ONNX node.  A node of an op type with no normaliser is folded when all
    its inputs are constants (``verifier.onnx_fold``) and recorded as unsupported otherwise."""
    name = node.name or b.unique_name(node.op_type)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    src = Src(name, node.op_type, tuple(b.resolve(n) if n else "" for n in node.input),
               tuple(node.output), attrs)
    standard = node.domain in ("", "ai.onnx")
    label = node.op_type if standard else f"{node.domain}.{node.op_type}"
    if any(n in b.poisoned for n in src.inputs):
        if not standard or node.op_type not in NORMALISERS:
            b.unsupported.setdefault(label, []).append(name)
        b.poisoned.update(src.outputs)
        return
    for n in src.inputs:
        if n and n not in b.shapes:
            raise b.error(src, f"reads tensor {n!r}, which no earlier node computes")
    constant = all(n in b.constants for n in src.inputs if n)
    try:
        if standard and node.op_type == "Constant":
            _norm_constant(b, src, node)
        elif standard and node.op_type in NORMALISERS:
            NORMALISERS[node.op_type](b, src)
        elif standard and constant:
            values = fold_node(node, [b.constants[n] if n else None for n in src.inputs],
                               b.opset, b.where, name)
            for out, value in zip(src.outputs, values):
                if out:
                    b.set_constant(out, value)
        else:
            b.unsupported.setdefault(label, []).append(name)
            b.poisoned.update(src.outputs)
    except ModelError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as err:
        raise b.error(src, f"cannot be evaluated on its static shapes "
                           f"{[b.shapes.get(n) for n in src.inputs]}: {err}") from err
