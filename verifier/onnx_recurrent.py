"""ONNX ``LSTM``, ``GRU`` and ``RNN`` nodes unrolled over their static sequence length into
primitive IR ops, so the bound engine needs no recurrent rule: the gate products (``i*g``,
``f*c``, ``o*h(C)``, ``(1-z)*h~``, ``z*h``) are plain ``Mul`` nodes of two perturbed tensors,
which the engine relaxes with McCormick planes and branch-and-bound can split.  They are kept
in the textbook form: folding ``(1-z)*h~ + z*h`` into one product ``h~ + z*(h - h~)`` gave
1.1-6x looser CROWN bounds on small random GRUs (and likewise for LSTM's input_forget).

Shape of the unrolled graph (``D`` directions, ``G`` gates, ``H`` hidden units, ``B`` the ONNX
batch dimension):

* The input projection of every time step and direction is ONE ``Gemm`` over the whole sequence
  (``X`` reshaped with a unit direction axis where ``Y`` has one) by the stacked ``W^T``, with
  ``Wb + Rb`` folded into its bias; each step slices its part.
* A step adds ``Gemm(h_{t-1}, R^T)`` (folded to a constant when ``h_{t-1}`` is one, left out
  when it is zero: no initial state) and applies the gate activations.
* Every per-step state has the shape of one step and one direction of ``Y``: ``(1, 1, B, H)``
  for layout 0, ``(B, 1, 1, H)`` for layout 1.  So ``Y`` is two ``Concat``s with no
  ``Reshape`` (exporters squeeze it right away), and ``Y_h``/``Y_c`` a ``Concat`` + ``Reshape``.

Where the ONNX spec is loose this follows onnxruntime, which re-checks every counterexample:
``clip`` bounds the gate pre-activations but not the cell state passed to ``h``;
``activation_alpha``/``activation_beta`` are taken in order by the activations that use them
(RNN: one per direction); a parameter whose default onnxruntime and the spec disagree on
(Affine, ScaledTanh, ThresholdedRelu, an RNN's LeakyRelu/HardSigmoid/Elu) must be given.
A uniform ``sequence_lens`` shorter than the sequence runs the recurrence on that prefix and
pads ``Y`` with zeros, as onnxruntime does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from genbab.verifier.forward import FORWARD

if TYPE_CHECKING:
    from genbab.verifier.onnx_builder import Builder, Src

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                        "RNN": ("Tanh",)}
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
# activation (lower case) -> (IR op, takes alpha, takes beta); Affine and ScaledTanh are composites
_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", False, False), "tanh": ("Tanh", False, False),
    "relu": ("Relu", False, False), "softsign": ("Softsign", False, False),
    "softplus": ("Softplus", False, False), "leakyrelu": ("LeakyRelu", True, False),
    "elu": ("Elu", True, False), "thresholdedrelu": ("ThresholdedRelu", True, False),
    "hardsigmoid": ("HardSigmoid", True, True), "affine": ("Mul", True, True),
    "scaledtanh": ("Tanh", True, True)}
# defaults onnxruntime and the ONNX spec agree on (onnxruntime's RNN has none: it reads 0)
_DEFAULTS = {"leakyrelu": (0.01, None), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None)}


@dataclass(frozen=True)
class _Act:
    """One activation function with its resolved parameters (None where it takes none)."""

    kind: str
    alpha: float | None = None
    beta: float | None = None


@dataclass(frozen=True)
class _Spec:
    """What one recurrent node computes, read and checked once from its attributes."""

    op_type: str
    hidden: int
    batch: int
    seq_length: int
    steps: int                               # time steps run (a uniform sequence_lens)
    layout: int
    reverse: tuple[bool, ...]                # per direction
    acts: tuple[tuple[_Act, ...], ...]       # per direction: (f, g, h) / (f, g) / (f,)
    clip: float | None
    weights: torch.Tensor                    # W: (D, G*H, input)
    recurrent: torch.Tensor                  # R: (D, G*H, H)
    bias: torch.Tensor                       # B: (D, 2*G*H), zeros when omitted
    peepholes: torch.Tensor | None           # LSTM's P: (D, 3*H)
    flag: bool                               # LSTM input_forget / GRU linear_before_reset


# -- reading the node ------------------------------------------------------------------------
def _read_spec(b: Builder, s: Src) -> _Spec:
    """Attributes, constant weights and static shapes of ``s``, each checked with a clear error."""
    gates, direction = _GATES[s.op_type], s.attr("direction", "forward")
    if direction not in _DIRECTIONS:
        raise b.error(s, f"unknown direction {direction!r}; expected forward, reverse or "
                         "bidirectional")
    reverse = _DIRECTIONS[direction]
    layout = int(s.attr("layout", 0))
    x_shape = b.shape(s.inputs[0])
    if layout not in (0, 1) or len(x_shape) != 3:
        raise b.error(s, f"expected layout 0 or 1 and a 3-D X, got layout {layout} and X of "
                         f"shape {x_shape}")
    seq, batch, size = x_shape if layout == 0 else (x_shape[1], x_shape[0], x_shape[2])
    w, r = b.const(s, 1, "W"), b.const(s, 2, "R")
    if w is None or r is None:
        raise b.error(s, "the W and R inputs are required")
    hidden = int(s.attr("hidden_size", r.shape[-1]))
    d, rows = len(reverse), gates * hidden
    _check_shape(b, s, "W", w, (d, rows, size))
    _check_shape(b, s, "R", r, (d, rows, hidden))
    bias = b.const(s, 3, "B")
    bias = torch.zeros((d, 2 * rows), dtype=w.dtype) if bias is None else bias.to(w.dtype)
    _check_shape(b, s, "B", bias, (d, 2 * rows))
    peepholes = b.const(s, 7, "P") if s.op_type == "LSTM" else None
    if peepholes is not None:
        _check_shape(b, s, "P", peepholes, (d, 3 * hidden))
        peepholes = peepholes.to(w.dtype)
    flag = "input_forget" if s.op_type == "LSTM" else "linear_before_reset"
    return _Spec(s.op_type, hidden, batch, seq, _steps(b, s, seq, batch), layout, reverse,
                 _activations(b, s, d), _clip(b, s), w, r.to(w.dtype), bias, peepholes,
                 bool(s.attr(flag, 0)))


def _check_shape(b: Builder, s: Src, what: str, value: torch.Tensor,
                 expected: tuple[int, ...]) -> None:
    if tuple(value.shape) != expected:
        raise b.error(s, f"{what} has shape {tuple(value.shape)}, expected {expected} from X, "
                         "hidden_size and direction")


def _steps(b: Builder, s: Src, seq: int, batch: int) -> int:
    """The number of time steps: ``seq`` unless ``sequence_lens`` gives one shorter length."""
    lens = b.const(s, 4, "sequence_lens")
    if lens is None:
        return seq
    values = sorted({int(v) for v in lens.reshape(-1).tolist()})
    if lens.numel() != batch or len(values) != 1 or not 1 <= values[0] <= seq:
        raise b.error(s, f"sequence_lens {lens.reshape(-1).tolist()} is not supported: genbab "
                         f"needs one length in 1..{seq} shared by all {batch} batch entries")
    return values[0]


def _clip(b: Builder, s: Src) -> float | None:
    clip = s.attr("clip")
    if clip is not None and not float(clip) > 0:
        raise b.error(s, f"clip must be positive, got {clip}")
    return None if clip is None else float(clip)


def _activations(b: Builder, s: Src, directions: int) -> tuple[tuple[_Act, ...], ...]:
    """The activation functions of every direction, parameters resolved."""
    default = _DEFAULT_ACTIVATIONS[s.op_type]
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in s.attr("activations") or default * directions]
    if s.op_type == "RNN" and directions == 1 and len(names) == 2:
        names = names[:1]   # RNN-1's default was [Tanh, Tanh]; onnxruntime takes the first
    if len(names) != len(default) * directions:
        raise b.error(s, f"expected {len(default) * directions} activations "
                         f"({', '.join(default)} per direction), got {names}")
    alphas = [float(v) for v in s.attr("activation_alpha") or ()]
    betas = [float(v) for v in s.attr("activation_beta") or ()]
    acts = _consume_parameters(b, s, names, alphas, betas)
    if s.op_type == "RNN":
        _check_rnn_parameters(b, s, acts, alphas, betas)
    per = len(default)
    return tuple(tuple(acts[k * per:(k + 1) * per]) for k in range(directions))


def _consume_parameters(b: Builder, s: Src, names: list[str], alphas: list[float],
                        betas: list[float]) -> list[_Act]:
    """The spec's (and onnxruntime's LSTM/GRU) reading: alphas and betas are taken in order by
    the activations that use them; missing ones get the shared default or are an error."""
    alpha_values, beta_values = iter(alphas), iter(betas)
    acts = []
    for name in names:
        kind = name.lower()
        if kind not in _ACTIVATIONS:
            raise b.error(s, f"activation {name!r} is not supported; supported: Sigmoid, Tanh, "
                             "Relu, LeakyRelu, HardSigmoid, Elu, Softsign, Softplus, Affine, "
                             "ScaledTanh, ThresholdedRelu")
        _, takes_alpha, takes_beta = _ACTIVATIONS[kind]
        default_alpha, default_beta = _DEFAULTS.get(kind, (None, None))
        alpha = next(alpha_values, default_alpha) if takes_alpha else None
        beta = next(beta_values, default_beta) if takes_beta else None
        if (takes_alpha and alpha is None) or (takes_beta and beta is None):
            raise b.error(s, f"activation {name} needs explicit activation_alpha"
                             f"{' and activation_beta' if takes_beta else ''} values "
                             "(onnxruntime and the ONNX spec have no common default)")
        acts.append(_Act(kind, alpha, beta))
    return acts


def _check_rnn_parameters(b: Builder, s: Src, acts: list[_Act], alphas: list[float],
                          betas: list[float]) -> None:
    """onnxruntime's RNN reads ``alpha[direction]`` (0 when the attribute is absent) where the
    spec reads them in order of use: refuse a node on which the two readings differ."""
    for d, act in enumerate(acts):
        for given, used, what in ((alphas, act.alpha, "alpha"), (betas, act.beta, "beta")):
            by_direction = given[d] if d < len(given) else (None if given else 0.0)
            if used is not None and used != by_direction:
                raise b.error(s, f"activation_{what} of activation {act.kind!r} is ambiguous "
                                 "(onnxruntime reads one value per direction, the ONNX spec one "
                                 f"per activation that takes it); give one {what} per direction")


# -- emitting nodes --------------------------------------------------------------------------
class _Unroll:
    """Emits the nodes of one unrolled recurrent node under unique ``<node>/<role>`` names
    (tensors ``<first output>/<role>``); constants fold as they are emitted."""

    def __init__(self, b: Builder, s: Src, spec: _Spec):
        self.b, self.s, self.spec = b, s, spec
        self.base = next((o for o in s.outputs if o), s.name)
        self.dtype = spec.weights.dtype
        self.time_axis = spec.layout                 # in X, Y and every state
        self.dir_axis = spec.layout + 1              # in Y and every state
        self.state_shape = ((1, 1, spec.batch, spec.hidden) if spec.layout == 0
                            else (spec.batch, 1, 1, spec.hidden))
        self.one = self.const("one", torch.tensor(1.0))   # for 1 - z (GRU), 1 - i (input_forget)

    def node(self, op_type: str, inputs: list[str], role: str, **attrs: object) -> str:
        out = f"{self.base}/{role}"
        self.b.emit(op_type, inputs, [out], f"{self.s.name}/{role}", **attrs)
        return out

    def final(self, op_type: str, inputs: list[str], out: str, role: str, **attrs: object) -> None:
        """Emit the node computing ONNX output ``out`` (a Concat of one input is an alias)."""
        if op_type == "Concat" and len(inputs) == 1:
            self.b.alias(out, inputs[0])
        else:
            self.b.emit(op_type, inputs, [out], f"{self.s.name}/{role}", **attrs)

    def const(self, role: str, value: torch.Tensor) -> str:
        return self.b.const_tensor(f"{self.s.name}/{role}", value.to(self.dtype))

    def is_zero(self, name: str) -> bool:
        return self.b.is_const(name) and not bool(self.b.constants[name].any())

    def add(self, a: str, c: str | None, role: str) -> str:
        return a if c is None else self.node("Add", [a, c], role)

    def slice_last(self, x: str, lo: int, hi: int, role: str) -> str:
        return self.node("Slice", [x], role, axes=(3,), starts=(lo,), ends=(hi,), steps=(1,))

    def activate(self, act: _Act, x: str, role: str, clip: bool = True) -> str:
        """``act(clip(x))``; Affine and ScaledTanh become Mul/Add by constants around Tanh."""
        if clip and self.spec.clip is not None:
            x = self.node("Clip", [x], f"{role}/clip", min=-self.spec.clip, max=self.spec.clip)
        op_type, takes_alpha, takes_beta = _ACTIVATIONS[act.kind]
        if act.kind == "affine":
            return self.affine(x, act.alpha, act.beta, role)
        if act.kind == "scaledtanh":
            scaled = self.affine(x, act.beta, 0.0, f"{role}/scale_in")
            return self.affine(self.node("Tanh", [scaled], f"{role}/tanh"), act.alpha, 0.0, role)
        if op_type not in FORWARD:
            raise self.b.error(self.s, f"activation {act.kind!r} ({op_type}) has no forward "
                                       "function in this version of genbab")
        attrs = {k: v for k, v, used in (("alpha", act.alpha, takes_alpha),
                                         ("beta", act.beta, takes_beta)) if used}
        return self.node(op_type, [x], role, **attrs)

    def affine(self, x: str, scale: float, shift: float, role: str) -> str:
        if scale != 1.0:
            x = self.node("Mul", [x, self.const(f"{role}/alpha", torch.tensor(scale))],
                          f"{role}/mul" if shift else role)
        if shift != 0.0:
            x = self.node("Add", [x, self.const(f"{role}/beta", torch.tensor(shift))], role)
        return x


@dataclass(frozen=True)
class _Weights:
    """Constant names shared by every step of one direction (registered once, not per step)."""

    recurrent: str                            # R^T: (H, G*H); GRU: the z and r rows, (H, 2H)
    candidate: str | None                     # GRU: Rh^T, (H, H)
    candidate_bias: str | None                # GRU, linear_before_reset: Rbh when nonzero
    peepholes: tuple[str | None, ...]         # LSTM: P_i, P_o, P_f (None: zero)


def _direction_weights(u: _Unroll, d: int) -> _Weights:
    spec, hidden = u.spec, u.spec.hidden
    r = spec.recurrent[d]
    gru = spec.op_type == "GRU"
    recurrent = u.const(f"d{d}/R", (r[:2 * hidden] if gru else r).T.contiguous())
    candidate = u.const(f"d{d}/Rh", r[2 * hidden:].T.contiguous()) if gru else None
    rbh = spec.bias[d, 5 * hidden:] if gru else None
    candidate_bias = (u.const(f"d{d}/Rbh", rbh) if gru and spec.flag and bool(rbh.any())
                      else None)
    peepholes: tuple[str | None, ...] = (None, None, None)
    if spec.peepholes is not None:
        peepholes = tuple(u.const(f"d{d}/P{k}", p) if bool(p.any()) else None
                          for k, p in enumerate(spec.peepholes[d].split(hidden)))
    return _Weights(recurrent, candidate, candidate_bias, peepholes)


def _projection_bias(spec: _Spec, d: int) -> torch.Tensor:
    """``Wb + Rb`` per gate row; a GRU with linear_before_reset keeps ``Rbh`` inside
    ``r * (h @ Rh^T + Rbh)``, so it is left out here."""
    rows = _GATES[spec.op_type] * spec.hidden
    w_bias, r_bias = spec.bias[d, :rows], spec.bias[d, rows:]
    if spec.op_type == "GRU" and spec.flag:
        r_bias = torch.cat([r_bias[:2 * spec.hidden], torch.zeros_like(r_bias[2 * spec.hidden:])])
    return w_bias + r_bias


def _project(u: _Unroll) -> str:
    """One Gemm for the input projection of all steps and directions: ``(.., D*G*H)`` with a
    unit direction axis, so a step's slice already has the state shape."""
    spec = u.spec
    x = u.s.inputs[0]
    size = u.b.shape(x)[2]
    shape = ((spec.seq_length, 1, spec.batch, size) if spec.layout == 0
             else (spec.batch, spec.seq_length, 1, size))
    x4 = u.node("Reshape", [x], "x", shape=shape)
    directions = range(len(spec.reverse))
    weight = torch.cat([spec.weights[d].T for d in directions], dim=1).contiguous()
    bias = torch.cat([_projection_bias(spec, d) for d in directions])
    inputs = [x4, u.const("W", weight)] + ([u.const("B", bias)] if bool(bias.any()) else [])
    return u.node("Gemm", inputs, "projection")


def _step_input(u: _Unroll, proj: str, t: int, lo: int, hi: int, role: str) -> str:
    """Step ``t``'s projection channels ``[lo, hi)``, in the state shape."""
    return u.node("Slice", [proj], role, axes=(u.time_axis, 3), starts=(t, lo),
                  ends=(t + 1, hi), steps=(1, 1))


def _gate_inputs(u: _Unroll, proj: str, t: int, offset: int, count: int, h: str | None,
                 recurrent: str, role: str) -> list[str]:
    """Pre-activations of ``count`` consecutive gates (channels from ``offset``): the input
    projection plus ``h @ R^T``.  With a zero ``h`` each gate is sliced straight from the
    projection, which saves the Add and a second Slice."""
    hidden = u.spec.hidden
    if h is None:
        return [_step_input(u, proj, t, offset + k * hidden, offset + (k + 1) * hidden,
                            f"{role}/x{k}") for k in range(count)]
    x = _step_input(u, proj, t, offset, offset + count * hidden, f"{role}/x")
    pre = u.node("Add", [x, u.node("Gemm", [h, recurrent], f"{role}/rec")], f"{role}/pre")
    if count == 1:
        return [pre]
    return [u.slice_last(pre, k * hidden, (k + 1) * hidden, f"{role}/pre{k}")
            for k in range(count)]


def _peephole(u: _Unroll, pre: str, cell: str | None, weight: str | None, role: str) -> str:
    if weight is None or cell is None:
        return pre
    return u.node("Add", [pre, u.node("Mul", [cell, weight], f"{role}/p")], role)


_State = tuple[str | None, ...]


def _lstm_step(u: _Unroll, w: _Weights, proj: str, d: int, t: int, state: _State) -> _State:
    """``C = f*c + i*g``, ``H = o*h(C)`` (gates i, o, f, c; ``o``'s peephole reads the new C);
    input_forget couples ``f = 1 - i`` (a Sub, exact for the bounds)."""
    h, c = state
    role, hidden = f"d{d}/t{t}", u.spec.hidden
    f_act, g_act, h_act = u.spec.acts[d]
    i_pre, o_pre, f_pre, g_pre = _gate_inputs(u, proj, t, 4 * hidden * d, 4, h, w.recurrent, role)
    p_i, p_o, p_f = w.peepholes
    i = u.activate(f_act, _peephole(u, i_pre, c, p_i, f"{role}/i_pre"), f"{role}/i")
    g = u.activate(g_act, g_pre, f"{role}/g")
    cell = u.node("Mul", [i, g], f"{role}/ig")
    if c is not None:                                   # f * c vanishes with a zero c
        if u.spec.flag:
            f = u.node("Sub", [u.one, i], f"{role}/f")
        else:
            f = u.activate(f_act, _peephole(u, f_pre, c, p_f, f"{role}/f_pre"), f"{role}/f")
        cell = u.node("Add", [u.node("Mul", [f, c], f"{role}/fc"), cell], f"{role}/cell")
    o = u.activate(f_act, _peephole(u, o_pre, cell, p_o, f"{role}/o_pre"), f"{role}/o")
    squashed = u.activate(h_act, cell, f"{role}/h_cell", clip=False)   # onnxruntime: no clip
    return u.node("Mul", [o, squashed], f"{role}/h"), cell


def _gru_step(u: _Unroll, w: _Weights, proj: str, d: int, t: int, state: _State) -> _State:
    """``H = (1-z)*h~ + z*h``, two products (tighter than one, see the module docstring);
    the candidate ``h~`` resets ``h`` before or (linear_before_reset) after ``Rh``."""
    h, = state
    role, hidden = f"d{d}/t{t}", u.spec.hidden
    f_act, g_act = u.spec.acts[d]
    offset = 3 * hidden * d
    z_pre, r_pre = _gate_inputs(u, proj, t, offset, 2, h, w.recurrent, role)
    z = u.activate(f_act, z_pre, f"{role}/z")
    r = u.activate(f_act, r_pre, f"{role}/r")
    x_h = _step_input(u, proj, t, offset + 2 * hidden, offset + 3 * hidden, f"{role}/x_h")
    pre = u.add(x_h, _gru_reset_term(u, w, h, r, role), f"{role}/cand_pre")
    cand = u.activate(g_act, pre, f"{role}/cand")
    keep = u.node("Sub", [u.one, z], f"{role}/one_minus_z")
    update = u.node("Mul", [keep, cand], f"{role}/update")
    if h is None:                                       # z * h vanishes with a zero h
        return (update,)
    return (u.node("Add", [update, u.node("Mul", [z, h], f"{role}/z_h")], f"{role}/h"),)


def _gru_reset_term(u: _Unroll, w: _Weights, h: str | None, r: str, role: str) -> str | None:
    """The candidate's recurrent term: ``(r*h) @ Rh^T`` (``Rbh`` is in the projection bias) or,
    with linear_before_reset, ``r * (h @ Rh^T + Rbh)``; None when it is zero."""
    if not u.spec.flag:
        if h is None:
            return None
        return u.node("Gemm", [u.node("Mul", [r, h], f"{role}/r_h"), w.candidate], f"{role}/rec_h")
    if h is None:
        return None if w.candidate_bias is None else u.node("Mul", [r, w.candidate_bias],
                                                            f"{role}/rec_h")
    bias = [w.candidate_bias] if w.candidate_bias else []
    inner = u.node("Gemm", [h, w.candidate] + bias, f"{role}/h_rh")
    return u.node("Mul", [r, inner], f"{role}/rec_h")


def _rnn_step(u: _Unroll, w: _Weights, proj: str, d: int, t: int, state: _State) -> _State:
    h, = state
    role = f"d{d}/t{t}"
    pre, = _gate_inputs(u, proj, t, u.spec.hidden * d, 1, h, w.recurrent, role)
    return (u.activate(u.spec.acts[d][0], pre, f"{role}/h"),)


_STEPS: dict[str, Callable[[_Unroll, _Weights, str, int, int, _State], _State]] = {
    "LSTM": _lstm_step, "GRU": _gru_step, "RNN": _rnn_step}


def _initial_state(u: _Unroll, index: int, d: int, what: str) -> str | None:
    """Direction ``d``'s part of initial_h / initial_c in the state shape; None for zeros
    (omitted, or a constant zero as torch exports), which lets the first step skip terms."""
    name = u.s.input(index)
    if not name:
        return None
    spec = u.spec
    directions = len(spec.reverse)
    expected = ((directions, spec.batch, spec.hidden) if spec.layout == 0
                else (spec.batch, directions, spec.hidden))
    if u.b.shape(name) != expected:
        raise u.b.error(u.s, f"{what} has shape {u.b.shape(name)}, expected {expected}")
    part = name
    if directions > 1:
        part = u.node("Slice", [name], f"{what}/d{d}/slice", axes=(spec.layout,), starts=(d,),
                      ends=(d + 1,), steps=(1,))
    state = u.node("Reshape", [part], f"{what}/d{d}", shape=u.state_shape)
    return None if u.is_zero(state) else state


def _run_direction(u: _Unroll, proj: str, d: int) -> tuple[list[str], _State]:
    """Step direction ``d`` through time; returns ``h`` per time step (in time order, whatever
    the direction) and the final state."""
    spec = u.spec
    state: _State = (_initial_state(u, 5, d, "initial_h"),)
    if spec.op_type == "LSTM":
        state += (_initial_state(u, 6, d, "initial_c"),)
    weights = _direction_weights(u, d)
    outputs = [""] * spec.steps
    times = range(spec.steps - 1, -1, -1) if spec.reverse[d] else range(spec.steps)
    for t in times:
        state = _STEPS[spec.op_type](u, weights, proj, d, t, state)
        outputs[t] = state[0]
    return outputs, state


def _emit_sequence(u: _Unroll, ys: list[list[str]], out: str) -> None:
    """``Y``: the steps concatenated along time (zeros past a shorter sequence_lens), then the
    directions along the direction axis."""
    spec = u.spec
    pad: list[str] = []
    if spec.steps < spec.seq_length:
        shape = list(u.state_shape)
        shape[u.time_axis] = spec.seq_length - spec.steps
        pad = [u.const("Y/pad", torch.zeros(shape))]
    if len(ys) == 1:
        u.final("Concat", ys[0] + pad, out, "Y", axis=u.time_axis)
        return
    joined = [hs[0] if len(hs + pad) == 1 else
              u.node("Concat", hs + pad, f"Y/d{d}", axis=u.time_axis) for d, hs in enumerate(ys)]
    u.final("Concat", joined, out, "Y", axis=u.dir_axis)


def _emit_last(u: _Unroll, states: list[str], out: str, role: str) -> None:
    """``Y_h`` / ``Y_c``: the final states, directions side by side, without Y's time axis."""
    spec = u.spec
    joined = states[0] if len(states) == 1 else u.node("Concat", states, f"{role}/concat",
                                                       axis=u.dir_axis)
    shape = ((len(states), spec.batch, spec.hidden) if spec.layout == 0
             else (spec.batch, len(states), spec.hidden))
    u.final("Reshape", [joined], out, role, shape=shape)


def _norm_recurrent(b: Builder, s: Src) -> None:
    """LSTM / GRU / RNN, unrolled; only the outputs the model names are emitted."""
    spec = _read_spec(b, s)
    state_count = 2 if spec.op_type == "LSTM" else 1
    if len(s.outputs) > 1 + state_count:
        raise b.error(s, f"{s.op_type} has at most {1 + state_count} outputs, got "
                         f"{len(s.outputs)}")
    u = _Unroll(b, s, spec)
    proj = _project(u)
    runs = [_run_direction(u, proj, d) for d in range(len(spec.reverse))]
    outputs = list(s.outputs)
    if outputs and outputs[0]:
        _emit_sequence(u, [hs for hs, _ in runs], outputs[0])
    for k, (out, role) in enumerate(zip(outputs[1:], ("Y_h", "Y_c"))):
        if out:
            _emit_last(u, [final[k] for _, final in runs], out, role)


RECURRENT_NORMALISERS = {"LSTM": _norm_recurrent, "GRU": _norm_recurrent, "RNN": _norm_recurrent}
