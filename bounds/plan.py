"""What the bound engine needs to know about a graph, computed once per graph (cached).

``make_plan(graph)`` rewrites the graph (bounds/rewrite.py), classifies every node, binds the
bound rules of nonlinear nodes and decides, per tensor, how its intermediate bounds are found
(algorithms.md 1.4):

* ``needs_bounds``: inputs of a relaxation (unary rule, both inputs of a product);
* ``tight``: ``needs_bounds`` closed under data-movement producers (a Reshape feeding a Relu
  needs its own input tight too);
* ``ibp_exact``: tight tensors whose interval image is already exact given tight inputs (outputs
  of elementwise rules and data movement, and the first affine layer over the raw input); they
  skip the CROWN pass.  The other tight tensors get CROWN with ``C = I``, intersected with IBP;
* ``relu_only``: tensors read only by ReLU-like ops, for which stable neurons need no CROWN row;
* ``terminal_products``: small elementwise products with only linear ops after them, whose
  planes ``bounds/planes.py`` chooses for CROWN bounds;
* ``scalar_cuts`` and ``cut_affine``: one-element tensors at which a backward pass may
  stop and use their own linear bounds, and small tensors that are constant affine maps of
  the input and such cuts (``bounds/cuts.py``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from genbab.bounds.linear import DATA_MOVEMENT, PERMUTING, is_linear
from genbab.bounds.ops import RULES, make_rule
from genbab.bounds.relaxation import OpRule
from genbab.bounds.rewrite import SHIFT_BY_MAX, prepare
from genbab.verifier.errors import UnsupportedOpError
from genbab.verifier.graph import Graph, Node

LINEAR, UNARY, MUL, MATMUL = "linear", "unary", "mul", "matmul"
_RELU_LIKE = frozenset({"Relu", "LeakyRelu"})
_FIRST_LAYER = frozenset({"Gemm", "Conv", "ConvTranspose", "MatMul", "Mul", "Div", "Add", "Sub",
                          "ReduceSum", "ReduceMean", "AveragePool", "Neg"})


@dataclass(frozen=True)
class Plan:
    graph: Graph                      # the rewritten graph the engine works on
    kinds: dict[str, str]             # node name -> LINEAR / UNARY / MUL / MATMUL
    rules: dict[str, OpRule]          # node name -> bound rule (nonlinear nodes)
    perturbed: frozenset[str]         # perturbed tensor names (input included)
    needs_bounds: frozenset[str]
    tight: frozenset[str]
    ibp_exact: frozenset[str]
    relu_only: frozenset[str]
    max_numel: int                    # largest perturbed tensor (row chunking)
    terminal_products: tuple[Node, ...] = ()   # see ``_terminal_products``
    scalar_cuts: frozenset[str] = frozenset()   # see ``_scalar_cuts``
    cut_affine: frozenset[str] = frozenset()    # see ``_cut_affine``
    jacobians: dict = field(default_factory=dict, compare=False, repr=False)   # cut-affine
    # tensor's constant Jacobians (``bounds.cuts``), filled on first use


_CACHE: dict[int, Plan] = {}


def make_plan(graph: Graph) -> Plan:
    """The plan of ``graph`` (cached per graph object).  Raises ``UnsupportedOpError`` listing
    every op the engine cannot bound."""
    cached = _CACHE.get(id(graph))
    if cached is not None:
        return cached
    g = prepare(graph)
    perturbed = {g.input_name} | {o for n in g.nodes for o in n.outputs}
    kinds, rules, unsupported = _classify(g, perturbed)
    if unsupported:
        raise UnsupportedOpError(graph.source, unsupported, sorted(set(RULES) | {"(linear ops)"}))
    needs = {n for node in g.nodes if kinds[node.name] != LINEAR
             for n in node.inputs if n in perturbed}
    tight = _close_tight(g, needs, kinds, perturbed)
    terminal = _terminal_products(g, kinds, perturbed)
    cuts = _scalar_cuts(g, kinds, perturbed, terminal)
    plan = Plan(g, kinds, rules, frozenset(perturbed), frozenset(needs), frozenset(tight),
                frozenset(_ibp_exact(g, tight, kinds, perturbed)),
                frozenset(_relu_only(g, needs)),
                max(_numel(g.shapes[t]) for t in perturbed),
                terminal, cuts, _cut_affine(g, kinds, perturbed, cuts))
    _CACHE[id(graph)] = plan
    weakref.finalize(graph, _CACHE.pop, id(graph), None)
    return plan


def unsupported_ops(graph: Graph) -> dict[str, list[str]]:
    """Op type -> names of the nodes of the rewritten graph (``bounds.rewrite.prepare``) that
    the engine cannot bound: no relaxation rule, or attributes the rule refuses.  Empty when
    ``make_plan`` succeeds; a model with such nodes can be attacked but never proved."""
    g = prepare(graph)
    perturbed = {g.input_name} | {o for n in g.nodes for o in n.outputs}
    return _classify(g, perturbed)[2]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _classify(g: Graph, perturbed: set[str]) -> tuple[dict, dict, dict[str, list[str]]]:
    kinds: dict[str, str] = {}
    rules: dict[str, OpRule] = {}
    unsupported: dict[str, list[str]] = {}
    for node in g.nodes:
        flags = [bool(n) and n in perturbed for n in node.inputs]
        try:
            if is_linear(node, perturbed.__contains__):
                kinds[node.name] = LINEAR
            elif node.op_type in ("Mul", "MatMul") and sum(flags) == 2:
                kinds[node.name] = MUL if node.op_type == "Mul" else MATMUL
                rules[node.name] = RULES["Mul"]
            elif node.op_type in RULES and sum(flags) == 1 and RULES[node.op_type].num_inputs == 1:
                kinds[node.name] = UNARY
                attrs = {k: v for k, v in node.attrs.items()}
                rules[node.name] = make_rule(node.op_type, attrs)
            else:
                unsupported.setdefault(node.op_type, []).append(node.name)
        except ValueError:
            unsupported.setdefault(f"{node.op_type} (attributes {dict(node.attrs)})", []).append(node.name)
    return kinds, rules, unsupported


def _close_tight(g: Graph, needs: set[str], kinds: dict, perturbed: set[str]) -> set[str]:
    producers = g.producers()
    tight = set(needs)
    stack = list(needs)
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.op_type not in DATA_MOVEMENT or kinds[node.name] != LINEAR:
            continue
        for name in node.inputs:
            if name in perturbed and name not in tight:
                tight.add(name)
                stack.append(name)
    return tight


def _ibp_exact(g: Graph, tight: set[str], kinds: dict, perturbed: set[str]) -> set[str]:
    """Tight tensors whose IBP interval is exact (no CROWN pass needed)."""
    permuted = {g.input_name}            # a permutation of (part of) the raw input
    exact = {g.input_name}
    for node in g.nodes:
        pert = [n for n in node.inputs if n in perturbed]
        if kinds[node.name] == UNARY or (kinds[node.name] == LINEAR and node.op_type in DATA_MOVEMENT
                                         and all(n in tight for n in pert)):
            exact.update(node.outputs)
        if kinds[node.name] != LINEAR or len(set(pert)) != 1 or pert[0] not in permuted:
            continue
        if node.op_type in PERMUTING:
            permuted.update(node.outputs)
            exact.update(node.outputs)
        elif node.op_type in _FIRST_LAYER and len(pert) == 1:
            exact.update(node.outputs)
    return exact & tight


_TERMINAL_ELEMENTS = 16   # most elements of terminal products, all together: the plane search
# bounds ``1 + elements`` rows per spec row


def _terminal_products(g: Graph, kinds: dict, perturbed: set[str]) -> tuple[Node, ...]:
    """Elementwise products of two perturbed tensors from which only linear ops lead to the
    output (so the coefficients reaching them never depend on a relaxation), in graph order,
    while their elements add up to at most ``_TERMINAL_ELEMENTS``."""
    consumers = g.consumers()
    linear_after: dict[str, bool] = {}
    for node in reversed(g.nodes):
        for name in node.outputs:
            users = consumers.get(name, []) if name in perturbed else []
            linear_after[name] = name == g.output_name or (
                bool(users) and all(kinds[c.name] == LINEAR
                                    and all(linear_after.get(o, False) for o in c.outputs)
                                    for c in users))
    chosen, total = [], 0
    for node in g.nodes:
        if kinds[node.name] == MUL and linear_after[node.outputs[0]]:
            size = _numel(g.shapes[node.outputs[0]])
            if total + size <= _TERMINAL_ELEMENTS:
                chosen.append(node)
                total += size
    return tuple(chosen)


def _scalar_cuts(g: Graph, kinds: dict, perturbed: set[str],
                 terminal: tuple[Node, ...]) -> frozenset[str]:
    """One-element perturbed tensors with a nonlinear node at or behind them (an affine
    function of the input is cheap to back-substitute anyway) and no terminal product behind
    them (the plane search must reach those).  A backward pass that meets such a tensor may
    use its lower linear bound for a positive coefficient and its upper one for a negative
    coefficient (``bounds/cuts.py``: exact unless what lies behind it is shared with
    another path)."""
    terminal_names = {n.name for n in terminal}
    nonlinear_behind: dict[str, bool] = {g.input_name: False}
    terminal_behind: dict[str, bool] = {g.input_name: False}
    for node in g.nodes:
        pert = [n for n in node.inputs if n in perturbed]
        nonlinear = kinds[node.name] != LINEAR or any(nonlinear_behind.get(n, False) for n in pert)
        term = node.name in terminal_names or any(terminal_behind.get(n, False) for n in pert)
        for name in node.outputs:
            nonlinear_behind[name], terminal_behind[name] = nonlinear, term
    return frozenset(name for name in perturbed
                     if name != g.input_name and name != g.output_name
                     and _numel(g.shapes[name]) == 1 and nonlinear_behind.get(name, False)
                     and not terminal_behind.get(name, True))


_CUT_AFFINE_ELEMENTS = 64   # largest cut-affine tensor (its Jacobian is found by a pass of
# the identity: size x size coefficients)


def _cut_affine(g: Graph, kinds: dict, perturbed: set[str], cuts: frozenset[str]) -> frozenset[str]:
    """Tensors of at most ``_CUT_AFFINE_ELEMENTS`` elements made by linear ops from the
    input, scalar cuts and other such tensors only (not through an engine-internal
    ShiftByMax, whose adjoint depends on the domain)."""
    affine: set[str] = set()
    for node in g.nodes:
        if kinds[node.name] != LINEAR or node.op_type == SHIFT_BY_MAX:
            continue
        pert = [p for p in node.inputs if p in perturbed]
        if pert and all(p == g.input_name or p in cuts or p in affine for p in pert):
            affine.update(o for o in node.outputs if _numel(g.shapes[o]) <= _CUT_AFFINE_ELEMENTS)
    return frozenset(affine)


def _relu_only(g: Graph, needs: set[str]) -> set[str]:
    consumers = g.consumers()
    return {t for t in needs if all(c.op_type in _RELU_LIKE for c in consumers.get(t, []))}


def node_by_output(g: Graph) -> dict[str, Node]:
    return g.producers()
