"""Property-preserving simplifications of the graph, applied before any search.

``peel_output_softmax``: a network that ends in ``Softmax`` over all of its outputs, checked
against a property that only compares outputs pairwise (rows ``a (y_i - y_j) <= 0``, the
usual "class i scores at least class j"), is searched on its logits instead.  Softmax is
strictly increasing in each logit with a shared denominator, so ``y_i <= y_j`` holds exactly
when ``z_i <= z_j``: the property means the same on the logits.  Why bother: the softmax
relaxation is loose and costly, and in float32 a confident network's softmax saturates to
exact 0 and 1, which leaves an attack without any gradient (traffic_signs_recognition's
binarised nets).  Counterexamples are still re-checked on the original model with onnxruntime.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from genbab.verifier.graph import Graph
from genbab.vnnlib.property import Property


def simplify(graph: Graph, prop: Property) -> tuple[Graph, list[str]]:
    """The graph to search for ``prop`` and a note per simplification applied."""
    notes = []
    peeled = peel_output_softmax(graph, prop)
    if peeled is not None:
        graph = peeled
        notes.append("output Softmax peeled off (the property compares outputs pairwise)")
    return graph, notes


def peel_output_softmax(graph: Graph, prop: Property) -> Graph | None:
    """``graph`` without its final Softmax, or None where that would change the property."""
    if not graph.nodes:
        return None
    last = graph.nodes[-1]
    if last.op_type != "Softmax" or last.output != graph.output_name:
        return None
    logits = last.inputs[0]
    shape = graph.shapes[logits]
    axis = int(last.attrs.get("axis", len(shape) - 1))
    if math.prod(shape) != shape[axis] or graph.shapes[logits] != graph.output_shape:
        return None   # several softmax groups: comparisons across groups would not carry over
    if not all(_pairwise(clause.coeffs, clause.thresholds)
               for disjunct in prop.disjuncts for clause in disjunct.clauses):
        return None
    return dataclasses.replace(graph, nodes=graph.nodes[:-1], output_name=logits)


def _pairwise(coeffs: np.ndarray, thresholds: np.ndarray) -> bool:
    """Every row is ``a y_i - a y_j <= 0`` for some ``i != j`` and ``a != 0``."""
    if np.any(thresholds != 0):
        return False
    nonzero = coeffs != 0
    if np.any(nonzero.sum(axis=1) != 2):
        return False
    pairs = coeffs[nonzero].reshape(-1, 2)
    return bool(np.all(pairs[:, 0] == -pairs[:, 1]))
