"""Exact check of small piecewise-linear (ReLU) networks as a mixed-integer program, solved by
HiGHS (``highspy``; no commercial solver).

Why: for a ReLU network with few unstable neurons the MILP is complete in one call, where
branch-and-bound may need many rounds; it is also the independent ground truth the BaB tests
compare with.  Only *chains* are encoded: the network alternates affine segments and ReLUs
(every segment reads the previous ReLU's output or the network input), which covers MLPs and
plain CNNs.  Anything else (skip connections, other nonlinearities) returns ``None`` from
``relu_chain`` and the caller uses branch-and-bound instead.

Encoding (Tjeng et al. 2019 big-M form), with pre-activation bounds ``l <= z <= u``:
inactive (u <= 0): a = 0;  active (l >= 0): a = z;  unstable: a >= 0, a >= z, a <= u d,
a <= z - l (1 - d), d binary.  Each clause ``C y <= d`` of a disjunct is one MILP:
minimise t subject to ``C_j y - d_j <= t``; the clause is refuted when the solver's *dual*
bound on t is positive (valid even at a time limit), and its optimal x is a counterexample
candidate for the caller to confirm on the original model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph

# ops that are affine in their single perturbed input (checked numerically as well)
_AFFINE = {"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Reshape", "Flatten",
           "Transpose", "Conv", "ConvTranspose", "Slice", "Gather", "Concat", "Pad",
           "AveragePool", "ReduceSum", "ReduceMean", "Identity"}
_BOUND_PAD = 1e-5      # relative widening of pre-activation bounds (float32 engine bounds)
_PROOF_MARGIN = 1e-6   # a clause is refuted only if the dual bound on t exceeds this (scaled)


@dataclass(frozen=True)
class ReluChain:
    """``y = W_L relu(... relu(W_1 x + b_1) ...) + b_L`` in float64; ``relu_inputs[k]`` names
    the graph tensor holding ``z_k = W_k a_{k-1} + b_k`` (for intermediate bounds)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    relu_inputs: tuple[str, ...]


@dataclass(frozen=True)
class MilpOutcome:
    """refuted[c]: clause c cannot hold anywhere in the box.  candidate: an input where the
    solver found a clause satisfied (to be confirmed); ``complete``: every clause was either
    refuted or has a candidate (no time limit hit without an answer)."""

    refuted: tuple[bool, ...]
    candidate: np.ndarray | None
    complete: bool
    unstable: int
    seconds: float
    lower: tuple[float, ...] = ()   # per clause: certified lower bound of max_j (C_j y - d_j)


def relu_chain(graph: Graph) -> ReluChain | None:
    """The affine/ReLU decomposition of ``graph``, or None if it is not a ReLU chain."""
    segments = _segments(graph)
    if segments is None:
        return None
    weights, biases = [], []
    for src, dst, nodes in segments:
        affine = _affine_map(graph, src, dst, nodes)
        if affine is None:
            return None
        weights.append(affine[0])
        biases.append(affine[1])
    return ReluChain(tuple(weights), tuple(biases), tuple(dst for _, dst, _ in segments[:-1]))


def _segments(graph: Graph) -> list[tuple[str, str, list]] | None:
    """[(source tensor, end tensor, nodes)]: each segment ends at a ReLU's input, the last at
    the output.  None when a node is neither affine nor a ReLU, or mixes two sources."""
    origin = {graph.input_name: graph.input_name}
    segments, current = [], []
    for node in graph.nodes:
        sources = {origin[t] for t in node.inputs if t in origin}
        if len(sources) != 1:
            return None
        source = sources.pop()
        if node.op_type == "Relu":
            segments.append((source, node.inputs[0], current))
            current = []
            origin[node.outputs[0]] = node.outputs[0]
            continue
        if node.op_type not in _AFFINE or (node.op_type in ("Mul", "Div") and sum(
                t in origin for t in node.inputs) != 1):
            return None
        current.append(node)
        for out in node.outputs:
            origin[out] = source
    if graph.output_name not in origin:
        return None
    segments.append((origin[graph.output_name], graph.output_name, current))
    expected = [graph.input_name] + [dst for _, dst, _ in segments[:-1]]
    relu_out = {n.inputs[0]: n.outputs[0] for n in graph.nodes if n.op_type == "Relu"}
    chain = [graph.input_name] + [relu_out[dst] for _, dst, _ in segments[:-1]]
    if [src for src, _, _ in segments] != chain or len(expected) != len(chain):
        return None
    return segments


def _affine_map(graph: Graph, src: str, dst: str, nodes: list) -> tuple[np.ndarray, np.ndarray] | None:
    """(W, b) with dst = W src + b, from evaluating the segment on the unit vectors; None if
    the segment is not affine after all (checked on random points)."""
    n = int(np.prod(graph.shapes[src]))
    sub = Graph(src, dst, tuple(nodes), graph.constants, graph.shapes)
    with torch.no_grad():
        probe = torch.cat([torch.zeros(1, n, dtype=torch.float64),
                           torch.eye(n, dtype=torch.float64)])
        out = (evaluate(sub, probe) if nodes else probe).reshape(n + 1, -1)
        bias, weight = out[0], (out[1:] - out[0]).T
        rng = torch.Generator().manual_seed(0)
        z = torch.randn(3, n, dtype=torch.float64, generator=rng) * 3
        direct = (evaluate(sub, z) if nodes else z).reshape(3, -1)
    predicted = z @ weight.T + bias
    scale = 1.0 + predicted.abs().max().item()
    if not torch.allclose(direct, predicted, rtol=1e-7, atol=1e-7 * scale):
        return None
    return weight.numpy(), bias.numpy()


def interval_bounds(chain: ReluChain, lower: np.ndarray, upper: np.ndarray,
                    known: list[tuple[np.ndarray, np.ndarray] | None] | None = None
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pre-activation bounds of every ReLU layer by interval arithmetic in float64,
    intersected with ``known`` (e.g. CROWN's) where given."""
    lo, up = lower.astype(np.float64), upper.astype(np.float64)
    result = []
    for k, (w, b) in enumerate(zip(chain.weights[:-1], chain.biases[:-1])):
        centre, radius = (up + lo) / 2, (up - lo) / 2
        mid = w @ centre + b
        rad = np.abs(w) @ radius
        zl, zu = mid - rad, mid + rad
        if known is not None and known[k] is not None:
            zl, zu = np.maximum(zl, known[k][0]), np.minimum(zu, known[k][1])
        pad = _BOUND_PAD * (1.0 + np.maximum(np.abs(zl), np.abs(zu)))
        zl, zu = zl - pad, zu + pad
        result.append((zl, zu))
        lo, up = np.maximum(zl, 0.0), np.maximum(zu, 0.0)
    return result


def count_unstable(bounds: list[tuple[np.ndarray, np.ndarray]]) -> int:
    return int(sum(((lo < 0) & (up > 0)).sum() for lo, up in bounds))


def solve(chain: ReluChain, lower: np.ndarray, upper: np.ndarray,
          clauses: list[tuple[np.ndarray, np.ndarray]], bounds: list[tuple[np.ndarray, np.ndarray]],
          time_limit_s: float) -> MilpOutcome:
    """One MILP per clause ``(C, d)`` (C: (rows, outputs)), sharing the time limit."""
    start = time.monotonic()
    deadline = start + max(time_limit_s, 0.0)
    refuted, candidate, complete, duals = [], None, True, []
    for c, d in clauses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            refuted.append(False)
            duals.append(-np.inf)
            complete = False
            continue
        proved, x, dual = _solve_clause(chain, lower, upper, c, d, bounds, remaining)
        refuted.append(proved)
        duals.append(dual)
        if x is not None and candidate is None:
            candidate = x
        complete = complete and (proved or x is not None)
    return MilpOutcome(tuple(refuted), candidate, complete, count_unstable(bounds),
                       time.monotonic() - start, tuple(duals))


def _solve_clause(chain, lower, upper, c, d, bounds, time_limit_s):
    import highspy

    lp, x_cols = _build(chain, lower, upper, np.asarray(c, np.float64),
                        np.asarray(d, np.float64), bounds)
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.passModel(lp)
    h.run()
    info = h.getInfo()
    status = h.getModelStatus()
    scale = 1.0 + float(np.abs(d).max(initial=0.0))
    dual = float(info.mip_dual_bound) if lp.integrality_ else float(info.objective_function_value)
    if status == highspy.HighsModelStatus.kInfeasible:
        # t is free and every box point is feasible, so this means wrong bounds: prove nothing
        return False, None, -np.inf
    proved = np.isfinite(dual) and dual > _PROOF_MARGIN * scale
    x = None
    if not proved and info.primal_solution_status == 2:   # a feasible solution exists
        values = np.asarray(h.getSolution().col_value)
        if values[-1] <= 0.0:
            x = np.clip(values[x_cols], lower, upper)
    return proved, x, (dual if np.isfinite(dual) else -np.inf)


def _new_highs():
    """A ``highspy.Highs``; its constructor prints a banner on the C-level stdout, which would
    corrupt our stdout (the result word, JSON), so it goes to stderr instead."""
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _build(chain, lower, upper, c, d, bounds):
    """The HighsLp for one clause.  Columns: x, then per ReLU layer (a, delta of unstable
    neurons), then t.  Rows are assembled as COO triplets."""
    import highspy
    from scipy import sparse

    cols_lo, cols_hi, integer = list(lower.astype(np.float64)), list(upper.astype(np.float64)), []
    rows_i, rows_j, vals, row_lo, row_hi = [], [], [], [], []
    prev = np.arange(len(lower))
    n_rows = 0

    def add_rows(block_cols: list[tuple[np.ndarray, np.ndarray]], lo, hi):
        """Rows r: sum over blocks of coefficient matrices times their columns in [lo, hi]."""
        nonlocal n_rows
        count = len(lo)
        for cols, matrix in block_cols:
            mat = sparse.coo_matrix(matrix)
            rows_i.append(mat.row + n_rows)
            rows_j.append(cols[mat.col])
            vals.append(mat.data)
        row_lo.append(lo)
        row_hi.append(hi)
        n_rows += count

    for (w, b), (zl, zu) in zip(zip(chain.weights[:-1], chain.biases[:-1]), bounds):
        n = len(b)
        a_cols = np.arange(len(cols_lo), len(cols_lo) + n)
        inactive, active = zu <= 0, zl >= 0
        unstable = ~(inactive | active)
        cols_lo.extend([0.0] * n)
        cols_hi.extend(np.where(inactive, 0.0, np.maximum(zu, 0.0)).tolist())
        eye = sparse.identity(n, format="csr")
        # a >= z, i.e. a - W a_prev >= b (all non-inactive neurons; equality when active)
        keep = ~inactive
        add_rows([(a_cols, eye[keep]), (prev, -w[keep])], b[keep],
                 np.where(active[keep], b[keep], np.inf))
        u_idx = np.flatnonzero(unstable)
        if len(u_idx):
            d_cols = np.arange(len(cols_lo), len(cols_lo) + len(u_idx))
            cols_lo.extend([0.0] * len(u_idx))
            cols_hi.extend([1.0] * len(u_idx))
            integer.extend(d_cols.tolist())
            sel = sparse.csr_matrix((np.ones(len(u_idx)), (np.arange(len(u_idx)), u_idx)),
                                    shape=(len(u_idx), n))
            # a - W a_prev - l delta <= b - l
            add_rows([(a_cols, sel), (prev, -w[u_idx]), (d_cols, sparse.diags(-zl[u_idx]))],
                     np.full(len(u_idx), -np.inf), b[u_idx] - zl[u_idx])
            # a - u delta <= 0
            add_rows([(a_cols, sel), (d_cols, sparse.diags(-zu[u_idx]))],
                     np.full(len(u_idx), -np.inf), np.zeros(len(u_idx)))
        prev = a_cols
    # clause rows: C (W_L a + b_L) - d <= t
    t_col = len(cols_lo)
    cols_lo.append(-np.inf)
    cols_hi.append(np.inf)
    w_out = c @ chain.weights[-1]
    rhs = d - c @ chain.biases[-1]
    add_rows([(prev, w_out), (np.array([t_col]), -np.ones((len(d), 1)))],
             np.full(len(d), -np.inf), rhs)

    n_cols = len(cols_lo)
    matrix = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows_i),
                                                        np.concatenate(rows_j))),
                               shape=(n_rows, n_cols)).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    cost = np.zeros(n_cols)
    cost[t_col] = 1.0
    lp.col_cost_ = cost
    lp.col_lower_ = np.asarray(cols_lo, dtype=np.float64)
    lp.col_upper_ = np.asarray(cols_hi, dtype=np.float64)
    lp.row_lower_ = np.concatenate(row_lo).astype(np.float64)
    lp.row_upper_ = np.concatenate(row_hi).astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_cols, n_rows
    if integer:
        kinds = [highspy.HighsVarType.kContinuous] * n_cols
        for j in integer:
            kinds[j] = highspy.HighsVarType.kInteger
        lp.integrality_ = kinds
    return lp, np.arange(len(lower))


def check_disjunct(graph: Graph, disjunct, time_limit_s: float,
                   max_unstable: int) -> MilpOutcome | None:
    """The MILP on one disjunct of a property, with CROWN's intermediate bounds; None when the
    network is not a ReLU chain or has more than ``max_unstable`` unstable neurons (the MILP
    would not finish: e.g. 272 of ACAS Xu's 300 ReLUs are unstable on prop_2's box)."""
    from genbab.bounds.engine import spec_bounds

    chain = relu_chain(graph)
    if chain is None:
        return None
    lower = np.asarray(disjunct.lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(disjunct.upper, dtype=np.float64).reshape(-1)
    eye = torch.eye(graph.output_size)
    with torch.no_grad():
        crown = spec_bounds(graph, torch.tensor(lower)[None].float(),
                            torch.tensor(upper)[None].float(), eye, method="crown")
    known = [tuple(t[0].reshape(-1).double().numpy() for t in crown.intermediate[name])
             if name in crown.intermediate else None for name in chain.relu_inputs]
    bounds = interval_bounds(chain, lower, upper, known)
    if count_unstable(bounds) > max_unstable:
        return None
    clauses = [(clause.coeffs, clause.thresholds) for clause in disjunct.clauses]
    return solve(chain, lower, upper, clauses, bounds, time_limit_s)
