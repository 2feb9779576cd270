"""Our own compute graph: what the ONNX loader produces and every later stage consumes.

Conventions (read these before touching any stage):

* Every tensor has a static *ONNX shape* (``Graph.shapes[name]``), with symbolic batch
  dimensions replaced by 1.  At run time every perturbed tensor carries one extra leading
  *batch* axis in front of its ONNX shape: a tensor named ``t`` is ``(batch, *shapes[t])``.
  The batch axis holds independent points (attacks) or independent sub-domains (bounds).
* Constants (initializers, ``Constant`` nodes and everything folded from them at load time)
  live in ``Graph.constants`` *without* a batch axis.
* ``Graph.nodes`` holds only the nodes whose output depends on the network input
  ("perturbed" nodes), in topological order.  The graph is frozen after loading: later stages
  return new values, they never write onto nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch


def _freeze(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, eq=False)   # identity semantics: usable as dict keys
class Node:
    """One operator.  ``inputs``/``outputs`` are tensor names; ``attrs`` are normalised ONNX
    attributes (e.g. Slice's starts/ends are attributes here whatever the opset)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", _freeze(self.attrs))

    @property
    def output(self) -> str:
        """The (first) output tensor; nearly every op has exactly one."""
        return self.outputs[0]


@dataclass(frozen=True, eq=False)   # identity semantics: usable as dict keys
class Graph:
    """A loaded model: one input, one output, perturbed nodes in topological order."""

    input_name: str
    output_name: str
    nodes: tuple[Node, ...]
    constants: Mapping[str, torch.Tensor]
    shapes: Mapping[str, tuple[int, ...]]
    source: str | None = None          # path of the ONNX file, for messages
    onnx_input_shape: tuple[int, ...] = ()   # the declared input shape (batch dim resolved to 1)
    onnx_output_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "constants", _freeze(self.constants))
        object.__setattr__(self, "shapes", _freeze(self.shapes))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shapes[self.input_name]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[self.output_name]

    @property
    def input_size(self) -> int:
        return _numel(self.input_shape)

    @property
    def output_size(self) -> int:
        return _numel(self.output_shape)

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def producers(self) -> dict[str, Node]:
        """Tensor name -> the node that computes it (perturbed tensors only)."""
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        """Tensor name -> the perturbed nodes that read it, in topological order."""
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                result.setdefault(name, []).append(node)
        return result

    def op_types(self) -> list[str]:
        return sorted({node.op_type for node in self.nodes})


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
