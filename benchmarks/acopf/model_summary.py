"""What an ml4acopf ONNX model computes, read from its graph: op counts, neural part vs physics.

The table in docs/acopf.md is produced by ``python -m benchmarks.acopf.model_summary MODEL.onnx``.
It reads the model with our loader (``verifier.onnx_loader.load_model``), so constant-only
subgraphs (ConstantOfShape, Equal, Where, Expand) are already folded away and what is counted is
what the verifier bounds and branches on.

Each perturbed node gets a *role* in power-system terms:

- the **proxy network**: the nodes the PyTorch export named ``/layers.*`` (Gemm, ReLU, and the
  sigmoid that squashes ``pg``, ``qg``, ``vm`` into their limits);
- the **physics layer**: everything after it (branch flows from ``vm`` and ``va`` with sin, cos,
  products and squares, then thermal and power-balance residuals).

A model whose nodes carry no ``/layers.`` names is reported as one part.
"""
from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass

from genbab.verifier.graph import Graph

NN_PREFIX = "/layers."      # torch.onnx names the nn.Sequential proxy's nodes like this
# op families the verifier relaxes and may branch on; everything else is linear or reshaping
NONLINEAR_FAMILY = {"Relu": "ReLU", "Sigmoid": "sigmoid", "Sin": "sin/cos", "Cos": "sin/cos",
                    "Pow": "square", "Mul": "product"}


@dataclass(frozen=True)
class OpRow:
    """One line of the op table: how many nodes of ``op`` in ``part``, and how many scalar
    nonlinear units (``neurons``; 0 for linear ops) they hold."""

    part: str
    op: str
    nodes: int
    neurons: int
    family: str          # "ReLU", "sigmoid", "sin/cos", "square", "product" or "linear"


def node_family(graph: Graph, node) -> str:
    """The node's op family: a Mul counts as a product only when both factors vary with the
    input (a Mul by a constant is a linear scaling)."""
    family = NONLINEAR_FAMILY.get(node.op_type, "linear")
    if family == "product" and any(graph.is_constant(name) for name in node.inputs):
        return "linear"
    return family


def node_part(node, has_nn_names: bool) -> str:
    if not has_nn_names:
        return "model"
    return "proxy network" if node.name.startswith(NN_PREFIX) else "physics layer"


def op_table(graph: Graph) -> list[OpRow]:
    """Counts per (part, op, family), in graph order of first appearance."""
    has_nn = any(node.name.startswith(NN_PREFIX) for node in graph.nodes)
    nodes: Counter = Counter()
    neurons: Counter = Counter()
    for node in graph.nodes:
        family = node_family(graph, node)
        op = node.op_type if family != "linear" or node.op_type != "Mul" else "Mul (by constant)"
        key = (node_part(node, has_nn), op, family)
        nodes[key] += 1
        if family != "linear":
            neurons[key] += math.prod(graph.shapes[node.output][1:])
    return [OpRow(part, op, count, neurons[(part, op, family)], family)
            for (part, op, family), count in nodes.items()]


def family_totals(rows: list[OpRow]) -> dict[str, int]:
    """Nonlinear units per family over the whole model (the candidates for neuron splits)."""
    totals: Counter = Counter()
    for row in rows:
        if row.family != "linear":
            totals[row.family] += row.neurons
    return dict(totals)


def markdown_table(rows: list[OpRow]) -> str:
    lines = ["| part | ONNX op | nodes | nonlinear units | kind |", "|---|---|---:|---:|---|"]
    for row in rows:
        units = str(row.neurons) if row.family != "linear" else "-"
        lines.append(f"| {row.part} | {row.op} | {row.nodes} | {units} | {row.family} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from genbab.verifier.onnx_loader import load_model    # the loader pulls in torch; only here

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="ONNX model, e.g. 14_ieee_ml4acopf.onnx")
    args = parser.parse_args(argv)
    graph = load_model(args.model)
    rows = op_table(graph)
    print(f"input {graph.input_size} values, output {graph.output_size} values, "
          f"{len(graph.nodes)} nodes after constant folding\n")
    print(markdown_table(rows))
    print("\nnonlinear units by kind: " + ", ".join(f"{k} {v}"
                                                    for k, v in family_totals(rows).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
