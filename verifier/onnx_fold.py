"""Load-time evaluation of ONNX nodes whose inputs are all constants, for any op type.

Exported models compute shapes with ops genbab never needs on the perturbed path (``Mod``,
``Range``, integer ``Where``, ``CumSum``, ``NonZero``, ...).  Rather than teaching our torch
forward every one of them, a node whose inputs are all known at load time is run by the
``onnx`` package's reference evaluator, which implements the whole standard operator set.
Only ops on the perturbed path need our own forward, bounds and branching.

This module imports nothing else from genbab but the error types.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx.reference import ReferenceEvaluator

from genbab.verifier.errors import ModelError

# Ops whose value is not a function of their inputs: folding them would freeze one draw.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                               "RandomUniformLike", "Multinomial", "Bernoulli"})


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A numpy result as a torch tensor (float16 widened to float32, unsigned to int64)."""
    array = np.asarray(array)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype in (np.uint16, np.uint32, np.uint64):
        array = array.astype(np.int64)
    elif array.dtype.kind not in "biuf":
        raise TypeError(f"a result of element type {array.dtype} (only numbers and booleans "
                        "are supported)")
    return torch.from_numpy(np.array(array, copy=True))


def fold_node(node: onnx.NodeProto, values: list[torch.Tensor | None], opset: int,
              where: str | None, node_name: str) -> list[torch.Tensor]:
    """The outputs of ``node`` on constant ``values`` (one per input; ``None`` for an omitted
    optional input), computed by ``onnx.reference``.  Raises ``ModelError`` naming the node
    when it cannot be evaluated."""
    problem = f"node {node_name!r} ({node.op_type}) has only constant inputs but "
    if node.op_type in _NONDETERMINISTIC:
        raise ModelError(where, problem + "draws random numbers; genbab needs a deterministic "
                                "model (replace it by a constant)")
    feeds = {name: value.numpy() for name, value in zip(node.input, values)
             if name and value is not None}
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opset})
        results = evaluator.run(None, feeds)
        return [to_torch(r) for r in results]
    except Exception as err:  # the reference evaluator raises many unrelated types
        raise ModelError(where, problem + f"cannot be evaluated at load time: "
                                f"{type(err).__name__}: {err}") from err
