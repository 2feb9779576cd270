"""Explicit adjoints of linear ops agree with the generic vjp of the forward function, and the
interval image of each linear op contains its sampled outputs."""
from __future__ import annotations

import pytest
import torch

from genbab.bounds.linear import (_args, _vjp_adjoint, linear_adjoint, linear_interval, run,
                                  shift_index)
from genbab.bounds.plan import LINEAR, make_plan
from genbab.bounds.rewrite import SHIFT_BY_MAX
from tests.unit.bounds.test_engine import MODELS
from genbab.verifier.forward import prepared_constants
from genbab.verifier.onnx_loader import load_model


def _linear_nodes():
    for name in sorted(MODELS):
        plan = make_plan(load_model(MODELS[name]))
        for node in plan.graph.nodes:
            if plan.kinds[node.name] == LINEAR:
                yield pytest.param(plan, node, id=f"{name}:{node.op_type}:{node.name}")


def _aux(plan, node, batch):
    if node.op_type != SHIFT_BY_MAX:
        return None
    shape = plan.graph.shapes[node.inputs[0]]
    x = torch.randn(batch, *shape)
    return shift_index(x, x, node.attrs["axis"])


@pytest.mark.parametrize("plan,node", list(_linear_nodes()))
def test_explicit_adjoint_matches_vjp(plan, node):
    shapes, consts = plan.graph.shapes, prepared_constants(plan.graph, torch.float32, "cpu")
    gen = torch.Generator().manual_seed(0)
    coeffs = [torch.randn(2, 3, *shapes[o], generator=gen) for o in node.outputs]
    aux = _aux(plan, node, 2)
    explicit = linear_adjoint(node, coeffs, shapes, plan.perturbed, consts, aux)
    generic = _vjp_adjoint(node, coeffs, shapes, plan.perturbed, consts, aux)
    assert explicit.keys() == generic.keys()
    for key in explicit:
        torch.testing.assert_close(explicit[key], generic[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("plan,node", list(_linear_nodes()))
def test_linear_interval_contains_samples(plan, node):
    shapes, consts = plan.graph.shapes, prepared_constants(plan.graph, torch.float32, "cpu")
    gen = torch.Generator().manual_seed(1)
    names = [n for n in dict.fromkeys(node.inputs) if n in plan.perturbed]
    bounds = {}
    for n in names:
        centre = torch.randn(1, *shapes[n], generator=gen)
        radius = torch.rand(1, *shapes[n], generator=gen)
        bounds[n] = (centre - radius, centre + radius)
    aux = _aux(plan, node, 1)
    if aux is not None:
        aux = shift_index(*bounds[names[0]], node.attrs["axis"])
    intervals = linear_interval(node, bounds, consts, aux)
    for _ in range(50):
        point = {n: lo + torch.rand(lo.shape, generator=gen) * (up - lo) for n, (lo, up) in bounds.items()}
        args, batched = _args(node, point, consts)
        if node.op_type == SHIFT_BY_MAX:
            args = [args[0], aux]
        for value, (lo, up) in zip(run(node, args, batched), intervals):
            assert (value >= lo - 1e-5).all() and (value <= up + 1e-5).all()
