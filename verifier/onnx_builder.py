"""What the ONNX loader builds a graph with, shared by ``onnx_loader`` and the normalisers
(``onnx_normalise``, ``onnx_recurrent``): ``Src`` (one ONNX node, resolved), ``Builder`` (the
graph under construction, which evaluates constant nodes on the spot and probes the shapes of
the others) and the ONNX tensor conversion.  Below all three, so that none of them imports
another's private names."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from genbab.verifier.errors import ModelError
from genbab.verifier.forward import FORWARD
from genbab.verifier.graph import Graph, Node

DTYPE_NAMES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float32", onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool", onnx.TensorProto.UINT16: "int64",
    onnx.TensorProto.UINT32: "int64", onnx.TensorProto.UINT64: "int64",
}


def tensor_to_torch(proto: onnx.TensorProto, where: str | None = None) -> torch.Tensor:
    """An ONNX tensor as a torch tensor (float16 widened to float32, unsigned to int64)."""
    if proto.data_type not in DTYPE_NAMES:
        raise ModelError(where, f"tensor {proto.name!r} has an unsupported element type "
                                f"{onnx.TensorProto.DataType.Name(proto.data_type)}")
    array = numpy_helper.to_array(proto)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype in (np.uint16, np.uint32, np.uint64):
        array = array.astype(np.int64)
    return torch.from_numpy(np.array(array, copy=True))


@dataclass(frozen=True)
class Src:
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


class Builder:
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
        # ONNX op label -> node names we cannot load; their outputs (and everything computed
        # from them) are "poisoned", so that every unsupported op is reported at once
        self.unsupported: dict[str, list[str]] = {}
        self.poisoned: set[str] = set()

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

    def const(self, src: Src, i: int, what: str) -> torch.Tensor | None:
        """The constant value of input ``i`` (None when omitted); an error if input-dependent."""
        name = src.input(i)
        if not name:
            return None
        if name not in self.constants:
            raise self.error(src, f"its {what} input {name!r} depends on the network input; "
                                  "genbab needs it to be a constant")
        return self.constants[name]

    def error(self, src: Src, problem: str) -> ModelError:
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
