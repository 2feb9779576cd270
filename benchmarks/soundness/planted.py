"""Networks with a counterexample planted in a tiny region, and their provably safe twins.

A planted network is a random MLP ``f`` (one nonlinearity family) plus a *spike* on output 0:

    tent(x)  = 1 - sum_i |x_i - c_i| / r_i          (1 at the centre c, <= 0 outside the
                                                     L1 ball of radii r around it)
    y_0      = f_0(x) + amp * spike(tent(x))         (softmax family: the spike is added to
                                                     logit 0, and y = softmax(logits))

with ``spike`` 0 (to float64 precision) wherever ``tent <= 0`` and 1 at the centre.  The
property says ``Y_0 < T`` with ``T`` a float64 interval-arithmetic upper bound of ``f_0`` over
the box plus a small gap, so the base network never violates it, and ``amp`` makes the centre
violate it by a margin of 1.  The violation region lies inside the L1 ball, whose share of the
box is ``prod(2 r_i / w_i) / n!``: 1e5 samples and a PGD attack from random starts miss it
(``hidden_check`` makes sure), yet it is a real counterexample (``confirm_witness`` runs it
through onnxruntime).

The safe twin is the same network with ``T`` raised to a float64 interval-arithmetic upper
bound of the whole output 0 (spike included) plus a gap: safe by construction.

The interval arithmetic here is independent of genbab's bounds: plain numpy in float64, every
bound moved outward by a relative pad far above float64 rounding (``_PAD``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

FAMILIES = ("relu", "sigmoid", "tanh", "sin", "gelu", "product", "softmax")
HIDDEN = (16, 16)
OUTPUTS = 3
SHARPNESS = 60.0        # k of the sigmoid / tanh / gelu spikes: at tent <= 0 they are below
# sigmoid(-30) ~ 1e-13 of their height
GAP = 1e-3              # T = upper bound + GAP * (1 + |upper bound|)
_PAD = 1e-9             # relative outward pad of every float64 interval operation


@dataclass(frozen=True)
class PlantedSpec:
    """One planted instance: everything needed to rebuild the network and its property."""

    family: str
    dims: int
    radius: float       # relative to the box width, per dimension
    seed: int

    @property
    def name(self) -> str:
        return f"{self.family}_d{self.dims}_r{self.radius:.0e}_s{self.seed}".replace("-0", "-")


@dataclass
class PlantedNet:
    """Weights (float32, as exported) and the planted region of one network."""

    family: str
    weights: list[tuple[np.ndarray, np.ndarray]]       # (W, b) per affine layer; product
    # family: layer 0 holds both factors' maps stacked ([W_a; W_b])
    lower: np.ndarray      # the box
    upper: np.ndarray
    centre: np.ndarray     # float32 values, so the centre is exactly representable
    radii: np.ndarray
    amp: float = 0.0

    @property
    def dims(self) -> int:
        return len(self.lower)


def random_net(spec: PlantedSpec) -> PlantedNet:
    """A random MLP of the family over a random box, with a centre away from the box faces."""
    rng = np.random.default_rng(spec.seed)
    n = spec.dims
    widths = [n, *HIDDEN, OUTPUTS]
    weights = []
    for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        rows = 2 * fan_out if (spec.family == "product" and k < len(HIDDEN)) else fan_out
        scale = 1.0 / math.sqrt(fan_in)
        if spec.family == "softmax" and k == len(HIDDEN):
            scale *= 0.3       # small logits: softmax_0 stays well below 1 over the box
        weights.append((rng.normal(0.0, scale, (rows, fan_in)).astype(np.float32),
                        rng.normal(0.0, 0.1, rows).astype(np.float32)))
    lower = rng.uniform(-1.0, 0.0, n).astype(np.float32)
    upper = (lower + rng.uniform(0.5, 1.5, n)).astype(np.float32)
    width = upper.astype(np.float64) - lower
    centre = (lower + width * rng.uniform(0.2, 0.8, n)).astype(np.float32)
    radii = (spec.radius * width).astype(np.float32)
    return PlantedNet(spec.family, weights, lower, upper, centre, radii)


# -- the network in torch (what is exported) --------------------------------------------------
class PlantedModule(nn.Module):
    def __init__(self, net: PlantedNet):
        super().__init__()
        self.family = net.family
        self.layers = nn.ModuleList()
        for w, b in net.weights:
            layer = nn.Linear(w.shape[1], w.shape[0])
            layer.weight.data = torch.from_numpy(w.copy())
            layer.bias.data = torch.from_numpy(b.copy())
            self.layers.append(layer)
        self.register_buffer("centre", torch.from_numpy(net.centre.copy()).reshape(1, -1))
        self.register_buffer("inv_radii", torch.from_numpy(
            (1.0 / net.radii.astype(np.float64)).astype(np.float32)).reshape(1, -1))
        one_hot = np.zeros((1, OUTPUTS), dtype=np.float32)
        one_hot[0, 0] = net.amp
        self.register_buffer("lift", torch.from_numpy(one_hot))

    def logits(self, x):
        """The base network's output (before the spike and the softmax)."""
        h = x
        for layer in self.layers[:-1]:
            h = _activation(self.family, layer(h))
        return self.layers[-1](h)

    def forward(self, x):
        logits = self.logits(x)
        tent = 1.0 - ((x - self.centre).abs() * self.inv_radii).sum(dim=1, keepdim=True)
        out = logits + _spike(self.family, tent) * self.lift
        return torch.softmax(out, dim=1) if self.family == "softmax" else out


def _activation(family: str, z):
    if family == "product":
        a, b = z.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)
    return {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "sin": torch.sin,
            "gelu": nn.functional.gelu, "softmax": torch.tanh}[family](z)


def _spike(family: str, tent):
    if family == "relu":
        return torch.relu(tent)
    if family == "tanh":
        return 0.5 + 0.5 * torch.tanh(SHARPNESS * (tent - 0.5))
    if family == "gelu":
        return nn.functional.gelu(SHARPNESS * tent) / SHARPNESS
    return torch.sigmoid(SHARPNESS * (tent - 0.5))


# -- float64 interval arithmetic (independent of genbab) --------------------------------------
def _pad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = np.maximum(np.abs(lo), np.abs(hi))
    return lo - _PAD * size - 1e-300, hi + _PAD * size + 1e-300


def _affine(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    w, b = w.astype(np.float64), b.astype(np.float64)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    centre, spread = w @ mid + b, np.abs(w) @ rad
    size = np.abs(w) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    return centre - spread - _PAD * size, centre + spread + _PAD * size


def _monotone(f, lo, hi):
    return _pad(f(lo), f(hi))


def _sigmoid(z):
    from scipy.special import expit
    return expit(z)


def _gelu(z):
    from scipy.special import erf
    return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))


_GELU_ARGMIN = -0.7517915634   # where GeLU has its minimum (about -0.16997)


def _interval_gelu(lo, hi):
    values = np.minimum(_gelu(lo), _gelu(hi))
    inside = (lo < _GELU_ARGMIN) & (hi > _GELU_ARGMIN)
    low = np.where(inside, _gelu(np.full_like(lo, _GELU_ARGMIN)) - 1e-9, values)
    return _pad(low, np.maximum(_gelu(lo), _gelu(hi)))


def _interval_sin(lo, hi):
    # the maximum 1 is reached if some pi/2 + 2 k pi lies in [lo, hi]; the minimum likewise
    tops = np.floor((hi - math.pi / 2) / (2 * math.pi)) * 2 * math.pi + math.pi / 2 >= lo
    bottoms = np.floor((hi + math.pi / 2) / (2 * math.pi)) * 2 * math.pi - math.pi / 2 >= lo
    ends_lo, ends_hi = np.minimum(np.sin(lo), np.sin(hi)), np.maximum(np.sin(lo), np.sin(hi))
    return _pad(np.where(bottoms, -1.0, ends_lo), np.where(tops, 1.0, ends_hi))


def _interval_product(a_lo, a_hi, b_lo, b_hi):
    corners = np.stack([a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi])
    return _pad(corners.min(axis=0), corners.max(axis=0))


def _interval_activation(family: str, lo, hi):
    if family == "product":
        half = len(lo) // 2
        a = _monotone(np.tanh, lo[:half], hi[:half])
        b = _monotone(_sigmoid, lo[half:], hi[half:])
        return _interval_product(*a, *b)
    if family == "sin":
        return _interval_sin(lo, hi)
    if family == "gelu":
        return _interval_gelu(lo, hi)
    f = {"relu": lambda z: np.maximum(z, 0.0), "sigmoid": _sigmoid, "tanh": np.tanh,
         "softmax": np.tanh}[family]
    return _monotone(f, lo, hi)


def _interval_tent(net: PlantedNet, lo, hi):
    c, inv = net.centre.astype(np.float64), 1.0 / net.radii.astype(np.float64)
    d_lo, d_hi = (lo - c) * inv, (hi - c) * inv
    abs_hi = np.maximum(np.abs(d_lo), np.abs(d_hi))
    abs_lo = np.where((d_lo <= 0) & (d_hi >= 0), 0.0, np.minimum(np.abs(d_lo), np.abs(d_hi)))
    t_lo, t_hi = 1.0 - abs_hi.sum(), 1.0 - abs_lo.sum()
    return _pad(np.array([t_lo]), np.array([t_hi]))


def _interval_spike(family: str, t_lo, t_hi):
    if family == "relu":
        return _monotone(lambda t: np.maximum(t, 0.0), t_lo, t_hi)
    if family == "tanh":
        return _monotone(lambda t: 0.5 + 0.5 * np.tanh(SHARPNESS * (t - 0.5)), t_lo, t_hi)
    if family == "gelu":
        lo, hi = _interval_gelu(SHARPNESS * t_lo, SHARPNESS * t_hi)
        return lo / SHARPNESS, hi / SHARPNESS
    return _monotone(lambda t: _sigmoid(SHARPNESS * (t - 0.5)), t_lo, t_hi)


def interval_output0(net: PlantedNet, with_spike: bool,
                     lower: np.ndarray | None = None, upper: np.ndarray | None = None):
    """Float64 interval bounds of output 0 over the box (or over [lower, upper])."""
    lo = (net.lower if lower is None else lower).astype(np.float64)
    hi = (net.upper if upper is None else upper).astype(np.float64)
    x_lo, x_hi = lo, hi
    for w, b in net.weights[:-1]:
        lo, hi = _interval_activation(net.family, *_affine(w, b, lo, hi))
    lo, hi = _affine(*net.weights[-1], lo, hi)
    if with_spike:
        s_lo, s_hi = _interval_spike(net.family, *_interval_tent(net, x_lo, x_hi))
        amp = float(net.amp)
        lo[0], hi[0] = _pad(lo[0] + min(0.0, amp * s_lo[0]), hi[0] + amp * s_hi[0])
    if net.family != "softmax":
        return float(lo[0]), float(hi[0])
    # softmax_0 = 1 / (1 + sum_j exp(z_j - z_0)): increasing in z_0, decreasing in the others
    up = 1.0 / (1.0 + np.exp(lo[1:] - hi[0]).sum())
    down = 1.0 / (1.0 + np.exp(hi[1:] - lo[0]).sum())
    low, high = _pad(np.array([down]), np.array([up]))
    return float(low[0]), float(high[0])


def threshold_above(bound: float) -> float:
    return float(np.float32(bound + GAP * (1.0 + abs(bound))))


def plant(spec: PlantedSpec) -> tuple[PlantedNet, float, float]:
    """The planted network and the thresholds of its two properties: (net, T_planted,
    T_safe).  Output 0 >= T_planted happens only in the planted region (and at its centre);
    output 0 >= T_safe nowhere (float64 interval arithmetic)."""
    net = random_net(spec)
    base_upper = interval_output0(net, with_spike=False)[1]
    t_planted = threshold_above(base_upper)
    if net.family == "softmax" and t_planted >= 0.99:
        raise ValueError(f"{spec.name}: softmax_0 may reach {base_upper}: no room for a spike")
    net.amp = _amplitude(net, t_planted)
    t_safe = threshold_above(interval_output0(net, with_spike=True)[1])
    return net, t_planted, t_safe


def _amplitude(net: PlantedNet, threshold: float) -> float:
    """Spike height that puts output 0 at the centre 1 above the threshold (softmax: whose
    softmax_0 at the centre is halfway between the threshold and 1)."""
    probe = PlantedModule(net).double()
    with torch.no_grad():
        logits = probe.logits(torch.from_numpy(net.centre.astype(np.float64)).reshape(1, -1))
    z = logits.reshape(-1).numpy()
    if net.family != "softmax":
        return float(np.float32(threshold - z[0] + 1.0))
    target = (threshold + 1.0) / 2
    # softmax_0 = target  <=>  z_0 + amp = log(sum_{j>0} exp(z_j)) + log(target / (1 - target))
    needed = np.log(np.exp(z[1:]).sum()) + math.log(target / (1.0 - target)) - z[0]
    return float(np.float32(needed + 1.0))


# -- the generator's own checks ---------------------------------------------------------------
@dataclass(frozen=True)
class HiddenCheck:
    samples: int
    sample_best: float        # max over the samples of y_0 - T (< 0: all missed)
    pgd_restarts: int
    pgd_best: float           # the same for PGD's end points
    witness_margin: float     # onnxruntime: y_0 - T at the centre (>= 0: a real witness)

    @property
    def hidden(self) -> bool:
        return self.sample_best < 0 and self.pgd_best < 0 and self.witness_margin >= 0


def hidden_check(net: PlantedNet, onnx_bytes: bytes, threshold: float, samples: int = 100_000,
                 restarts: int = 64, steps: int = 200, seed: int = 0) -> HiddenCheck:
    """Does the witness hold in onnxruntime, and do uniform sampling and PGD from random
    starts (on the same float32 network) both miss the region?"""
    module = PlantedModule(net).eval()
    lower = torch.from_numpy(net.lower).reshape(1, -1)
    upper = torch.from_numpy(net.upper).reshape(1, -1)
    gen = torch.Generator().manual_seed(seed)
    best = -math.inf
    with torch.no_grad():
        for start in range(0, samples, 10_000):
            count = min(10_000, samples - start)
            x = lower + (upper - lower) * torch.rand(count, net.dims, generator=gen)
            best = max(best, float(module(x)[:, 0].max()) - threshold)
    x = (lower + (upper - lower) * torch.rand(restarts, net.dims, generator=gen)).requires_grad_()
    for step in range(steps):
        y0 = module(x)[:, 0]
        (grad,) = torch.autograd.grad(y0.sum(), x)
        size = 0.05 * (1.0 - step / steps) + 1e-3
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + size * (upper - lower) * grad.sign(), lower), upper)
        x.requires_grad_()
    with torch.no_grad():
        pgd = float(module(x)[:, 0].max()) - threshold
    return HiddenCheck(samples, best, restarts, pgd, onnx_output0(onnx_bytes, net.centre)
                       - threshold)


def onnx_output0(onnx_bytes: bytes, x: np.ndarray) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return float(session.run(None, {name: x.astype(np.float32).reshape(1, -1)})[0][0, 0])
