"""One-off diagnostic for docs/acopf.md (not library code): what does neuron BaB split on
14_ieee_prop1?  It wraps branching.neuron_bab.split_neurons / split_inputs and counts split
decisions by the op consuming the split tensor, plus input bisections.  The Stats field
splits_by_kind will make this unnecessary once neuron BaB fills it in.

    python docs/acopf_runs/count_splits.py [lut|midpoint]      (from the repository root)
"""
import sys
from collections import Counter

import torch

import branching.neuron_bab as nb
from verifier.api import verify
from verifier.onnx_loader import load_model
from verifier.options import VerifyOptions, BranchingOptions
import dataclasses

torch.set_num_threads(1)
root = "/work/shared/benchmarks/ml4acopf_2023"
graph = load_model(f"{root}/onnx/14_ieee_ml4acopf.onnx")
consumers = {}
for node in graph.nodes:
    for name in node.inputs:
        consumers.setdefault(name, set()).add(node.op_type)
counts = Counter()
original = nb.split_neurons

def counting(domains, decisions, *args, **kwargs):
    for d in decisions:
        counts["+".join(sorted(consumers.get(d.tensor, {"?"})))] += int(d.index.numel())
    return original(domains, decisions, *args, **kwargs)

nb.split_neurons = counting
original_inputs = nb.split_inputs

def counting_inputs(domains, dims, *args, **kwargs):
    counts["input"] += int(dims.numel())
    return original_inputs(domains, dims, *args, **kwargs)

nb.split_inputs = counting_inputs
points = sys.argv[1] if len(sys.argv) > 1 else "lut"
options = VerifyOptions()
options = dataclasses.replace(options, branching=dataclasses.replace(options.branching, branch_points=points))
result = verify(graph, f"{root}/vnnlib/14_ieee_prop1.vnnlib", timeout=240, options=options)
print(points, result.vnncomp_word, round(result.time_s, 1), result.stats.bab_rounds,
      result.stats.domains_visited, dict(counts))
