"""Sampled soundness checks of every registered relaxation (algorithms.md 3.16, STYLE.md 9).

Each rule (and each attribute variant below) is checked on 4096 float32 boxes x 64 points
(262,144 points, both endpoints included) from ``helpers.random_boxes``: default relaxation,
relaxation under random (unprojected, wide-range) parameters, and the interval function.
Bivariate Mul: 4096 boxes x 64 points including the 4 corners.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from genbab.bounds.ops import RULES, make_rule
from genbab.bounds.relaxation import LinearRelaxation, OpRule, PlaneRelaxation
from tests.unit.bounds.helpers import (assert_below, assert_no_nan, random_boxes,
                                       sample_in_box)

N_BOXES, PER_BOX = 4096, 64


pytestmark = pytest.mark.usefixtures("one_thread")

REQUIRED_OPS = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Log",
                "Reciprocal", "Sqrt", "Pow", "Mul", "Abs", "Sign", "Floor", "Erf", "Gelu",
                "Clip", "HardSigmoid", "Softplus", "SiLU", "Elu", "Celu", "Selu", "HardSwish",
                "Softsign", "Atan", "Shrink", "ThresholdedRelu", "Mish", "LogSigmoid"}

VARIANTS = {
    "LeakyRelu": [{"alpha": 0.2}, {"alpha": 1.0}, {"alpha": 2.5}, {"alpha": -0.5}],
    "Pow": [{"exponent": e} for e in (3, 4, 5, 0, 1, -1, -2, 0.5, 1.5, 2.5, -0.5)],
    "Clip": [{"min": 0.0, "max": 6.0}, {"min": -1.0, "max": 1.0}, {"min": 0.5}],
    "HardSigmoid": [{"alpha": -0.3, "beta": 0.1}, {"alpha": 0.0, "beta": 0.3},
                    {"alpha": 1 / 6, "beta": 0.5}],
    "Elu": [{"alpha": 0.5}, {"alpha": 2.0}, {"alpha": -0.5}, {"alpha": 0.0}],
    "Celu": [{"alpha": 0.5}, {"alpha": 2.0}, {"alpha": -1.5}],
    "Selu": [{"alpha": 1.0, "gamma": 2.0}, {"alpha": 0.5, "gamma": 0.25},
             {"alpha": -1.0, "gamma": 1.5}, {"alpha": 2.0, "gamma": -1.0}],
    "Shrink": [{"bias": 0.5, "lambd": 0.5}, {"bias": 1.5, "lambd": 0.25},
               {"bias": -0.25, "lambd": 1.0}, {"bias": 0.5, "lambd": 0.0},
               {"bias": 0.25, "lambd": -0.5}],
    "ThresholdedRelu": [{"alpha": 0.0}, {"alpha": -1.0}, {"alpha": 2.5}],
    "Gelu": [{"approximate": "tanh"}],
}


def _cases() -> list[tuple[str, OpRule]]:
    cases = [(op, rule) for op, rule in RULES.items()]
    for op, variants in VARIANTS.items():
        if op in RULES:
            cases += [(f"{op}{attrs}", make_rule(op, attrs)) for attrs in variants]
    return cases


CASES = _cases()
UNARY = [c for c in CASES if c[1].num_inputs == 1]
IDS = [c[0] for c in UNARY]


def _boxes(rule: OpRule, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    n = N_BOXES if rule is RULES.get(rule.op_type) else N_BOXES // 2   # attribute variants: half
    return random_boxes(n, seed=seed, positive=rule.input_range[0] >= 0)


@functools.lru_cache(maxsize=None)
def _default_relaxation(name: str) -> tuple:
    rule = dict(CASES)[name]
    lower, upper = _boxes(rule)
    return lower, upper, rule.relax(lower, upper, None)


def _check_lines(rule: OpRule, lower, upper, rel: LinearRelaxation, what: str) -> None:
    x = sample_in_box(lower, upper, PER_BOX)
    y = rule.evaluate(x.double())
    assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
    for t in (rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias):
        assert t.dtype == torch.float32 and t.shape == lower.shape
    assert_below(rel.lower_slope[:, None], rel.lower_bias[:, None], x, y, what=what + " lower")
    assert_below(-rel.upper_slope[:, None], -rel.upper_bias[:, None], x, -y,
                 what=what + " upper")


def _random_params(rule: OpRule, lower, upper, seed: int) -> torch.Tensor:
    """Uniform over a wide range around the box, plus far-away values (relax must project)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (rule.num_params, *lower.shape)
    mid = ((lower.double() + upper.double()) / 2).float()
    spread = 10 ** (torch.rand(shape, generator=gen) * 7 - 3)
    params = mid + spread * (2 * torch.rand(shape, generator=gen) - 1)
    params[..., ::17] = 1e6
    params[..., ::19] = -1e6
    return params


def test_registry_op_types_are_unique_and_cover_the_required_ops():
    assert all(op == rule.op_type for op, rule in RULES.items())
    assert len({r.op_type for r in RULES.values()}) == len(RULES)
    missing = REQUIRED_OPS - set(RULES)
    assert not missing, f"no rule for {sorted(missing)}"


@pytest.mark.parametrize("name,rule", UNARY, ids=IDS)
def test_relaxation_is_sound(name, rule):
    lower, upper, rel = _default_relaxation(name)
    _check_lines(rule, lower, upper, rel, name)


@pytest.mark.parametrize("name,rule", UNARY, ids=IDS)
def test_relaxation_is_sound_for_random_params(name, rule):
    if rule.num_params == 0:
        pytest.skip("no optimisable parameters")
    lower, upper = _boxes(rule, seed=3)
    params = _random_params(rule, lower, upper, seed=4)
    _check_lines(rule, lower, upper, rule.relax(lower, upper, params), name + " random params")
    init = rule.init_params(lower, upper)
    assert init.shape == params.shape and init.dtype == lower.dtype
    _check_lines(rule, lower, upper, rule.relax(lower, upper, init), name + " init params")
    projected = rule.project_params(lower, upper, params)
    assert torch.isfinite(projected).all()
    assert torch.equal(rule.project_params(lower, upper, projected), projected)


@pytest.mark.parametrize("name,rule", UNARY, ids=IDS)
def test_interval_is_sound(name, rule):
    lower, upper = _boxes(rule, seed=5)
    lo, hi = rule.interval(lower, upper)
    assert_no_nan(lo, hi)
    assert (lo <= hi).all()
    x = sample_in_box(lower, upper, PER_BOX)
    y = rule.evaluate(x.double())
    zero = torch.zeros_like(x)
    assert_below(zero, lo[:, None].expand_as(x), x, y, what=name + " interval lower")
    assert_below(zero, -hi[:, None].expand_as(x), x, -y, what=name + " interval upper")


@pytest.mark.parametrize("name,rule", UNARY, ids=IDS)
def test_no_nan_outside_the_domain_or_for_infinite_bounds(name, rule):
    lower, upper = random_boxes(1024, seed=7)
    inf = torch.tensor([float("-inf"), -5.0, float("-inf"), 3.0])
    sup = torch.tensor([float("inf"), float("inf"), 2.0, 3.0])
    lower, upper = torch.cat([lower, inf]), torch.cat([upper, sup])
    rel = rule.relax(lower, upper, None)
    assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias,
                  *rule.interval(lower, upper))
    if rule.num_params:
        rel = rule.relax(lower, upper, rule.init_params(lower, upper))
        assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)


@pytest.mark.parametrize("name,rule", UNARY, ids=IDS)
def test_default_lines_are_no_looser_than_the_interval_at_the_midpoint(name, rule):
    if rule.op_type == "Exp":
        pytest.skip("the lower tangent is capped at l + 0.99 on purpose (3.5)")
    lower, upper, rel = _default_relaxation(name)
    lo, hi = rule.interval(lower, upper)
    mid = (lower.double() + upper.double()) / 2
    at_mid_lo = rel.lower_slope.double() * mid + rel.lower_bias.double()
    at_mid_up = rel.upper_slope.double() * mid + rel.upper_bias.double()
    finite = torch.isfinite(lo) & torch.isfinite(hi) & (hi - lo < 1e30)
    eps = torch.finfo(torch.float32).eps
    slack = 1e-9 * (hi.double() - lo.double()).abs() + 4 * eps * (
        (rel.lower_slope.double() * mid).abs() + rel.lower_bias.double().abs()
        + (rel.upper_slope.double() * mid).abs() + rel.upper_bias.double().abs()
        + lo.double().abs() + hi.double().abs()) + 1e-30
    assert (at_mid_lo >= lo.double() - slack)[finite].all()
    assert (at_mid_up <= hi.double() + slack)[finite].all()


# ---- Mul (bivariate) ----

def _mul_boxes(seed: int):
    xl, xu = random_boxes(N_BOXES, seed=seed)
    yl, yu = random_boxes(N_BOXES, seed=seed + 1)
    perm = torch.randperm(N_BOXES, generator=torch.Generator().manual_seed(seed))
    return (xl, yl[perm]), (xu, yu[perm])


def _mul_points(lower, upper):
    gen = torch.Generator().manual_seed(11)
    t = torch.rand(2, N_BOXES, PER_BOX, generator=gen, dtype=torch.float64)
    t[:, :, :4] = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=torch.float64)[:, None, :]
    xs = []
    for i in range(2):
        lo, up = lower[i].double()[:, None], upper[i].double()[:, None]
        v = (lo + t[i] * (up - lo)).float()
        xs.append(torch.minimum(torch.maximum(v, lower[i][:, None]), upper[i][:, None]))
    return xs


def _check_planes(lower, upper, rel: PlaneRelaxation, what: str) -> None:
    x, y = _mul_points(lower, upper)
    z = x.double() * y.double()
    for t in (rel.lower_x, rel.lower_y, rel.lower_bias, rel.upper_x, rel.upper_y, rel.upper_bias):
        assert_no_nan(t)
    lo_lin = rel.lower_y.double()[:, None] * y.double() + rel.lower_bias.double()[:, None]
    up_lin = rel.upper_y.double()[:, None] * y.double() + rel.upper_bias.double()[:, None]
    assert_below(rel.lower_x[:, None], lo_lin, x, z, what=what + " lower")
    assert_below(-rel.upper_x[:, None], -up_lin, x, -z, what=what + " upper")


def test_mul_relaxation_is_sound():
    lower, upper = _mul_boxes(20)
    rule = RULES["Mul"]
    _check_planes(lower, upper, rule.relax(lower, upper, None), "Mul")
    params = 10 * torch.rand(2, N_BOXES, generator=torch.Generator().manual_seed(2)) - 5
    _check_planes(lower, upper, rule.relax(lower, upper, params), "Mul random params")
    init = rule.init_params(lower, upper)
    assert init.shape == (2, N_BOXES) and (init == 1).all()


def test_mul_interval_is_sound():
    lower, upper = _mul_boxes(30)
    lo, hi = RULES["Mul"].interval(lower, upper)
    x, y = _mul_points(lower, upper)
    z = x.double() * y.double()
    zero = torch.zeros_like(z)
    assert_below(zero, lo[:, None].expand_as(z), x, z, what="Mul interval lower")
    assert_below(zero, -hi[:, None].expand_as(z), x, -z, what="Mul interval upper")


def test_mul_default_planes_are_mccormick_p1_q1():
    xl, xu = torch.tensor([-1.0, 0.5]), torch.tensor([2.0, 3.0])
    yl, yu = torch.tensor([-3.0, -2.0]), torch.tensor([1.0, 4.0])
    rel = RULES["Mul"].relax((xl, yl), (xu, yu), None)
    torch.testing.assert_close(rel.lower_x, yl)
    torch.testing.assert_close(rel.lower_y, xl)
    torch.testing.assert_close(rel.lower_bias, -xl * yl)
    torch.testing.assert_close(rel.upper_x, yu)
    torch.testing.assert_close(rel.upper_y, xl)
    torch.testing.assert_close(rel.upper_bias, -xl * yu)


def test_mul_broadcasts_bounds():
    xl, xu = torch.full((3, 1), -1.0), torch.full((3, 1), 1.0)
    yl, yu = torch.zeros(1, 4), torch.ones(1, 4)
    rel = RULES["Mul"].relax((xl, yl), (xu, yu), None)
    assert rel.lower_x.shape == (3, 4)


# ---- tightness where it is easy to state ----

def test_relu_upper_line_passes_through_the_corners():
    lower, upper = torch.tensor([-2.0, -0.5, -3.0]), torch.tensor([1.0, 4.0, 3.0])
    rel = RULES["Relu"].relax(lower, upper, None)
    torch.testing.assert_close(rel.upper_slope * lower + rel.upper_bias, torch.zeros(3))
    torch.testing.assert_close(rel.upper_slope * upper + rel.upper_bias, upper)
    torch.testing.assert_close(rel.lower_slope, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(rel.lower_bias, torch.zeros(3))


def test_relu_is_exact_when_stable():
    lower, upper = torch.tensor([0.5, -3.0]), torch.tensor([2.0, -1.0])
    rel = RULES["Relu"].relax(lower, upper, None)
    torch.testing.assert_close(rel.lower_slope, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(rel.upper_slope, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(rel.upper_bias, torch.zeros(2), atol=1e-12, rtol=0)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
def test_s_shaped_single_curvature_uses_the_chord(op):
    rule = RULES[op]
    f = rule.evaluate
    lower, upper = torch.tensor([0.5, -4.0]), torch.tensor([3.0, -0.5])
    rel = rule.relax(lower, upper, None)
    # concave box: chord below; convex box: chord above
    torch.testing.assert_close(rel.lower_slope[0] * lower[0] + rel.lower_bias[0], f(lower[0]))
    torch.testing.assert_close(rel.lower_slope[0] * upper[0] + rel.lower_bias[0], f(upper[0]))
    torch.testing.assert_close(rel.upper_slope[1] * lower[1] + rel.upper_bias[1], f(lower[1]))
    torch.testing.assert_close(rel.upper_slope[1] * upper[1] + rel.upper_bias[1], f(upper[1]))


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
def test_s_shaped_straddling_lower_line_is_the_anchored_tangent(op):
    rule = RULES[op]
    f, lower, upper = rule.evaluate, torch.tensor([-3.0]), torch.tensor([4.0])
    rel = rule.relax(lower, upper, None)
    # tangent passes through the right endpoint and touches the convex part
    torch.testing.assert_close(rel.lower_slope * upper + rel.lower_bias, f(upper), atol=1e-5,
                               rtol=1e-5)
    xs = torch.linspace(-3.0, 0.0, 20001, dtype=torch.float64)
    gap = f(xs) - (rel.lower_slope.double() * xs + rel.lower_bias.double())
    assert gap.min() < 1e-5


def test_exp_lower_line_stays_positive():
    lower, upper = torch.tensor([-5.0, 0.0, 10.0]), torch.tensor([5.0, 40.0, 12.0])
    rel = RULES["Exp"].relax(lower, upper, None)
    assert (rel.lower_slope * lower + rel.lower_bias > 0).all()


def test_square_default_lines_are_midpoint_tangent_and_chord():
    rel = RULES["Pow"].relax(torch.tensor([-1.0]), torch.tensor([2.0]), None)
    torch.testing.assert_close(rel.lower_slope, torch.tensor([1.0]))      # tangent at 0.5
    torch.testing.assert_close(rel.lower_bias, torch.tensor([-0.25]))
    torch.testing.assert_close(rel.upper_slope, torch.tensor([1.0]))
    torch.testing.assert_close(rel.upper_bias, torch.tensor([2.0]))


def test_sin_on_a_whole_period_gives_flat_lines():
    rel = RULES["Sin"].relax(torch.tensor([-1.0]), torch.tensor([20.0]), None)
    torch.testing.assert_close(rel.lower_bias, torch.tensor([-1.0]))
    torch.testing.assert_close(rel.upper_bias, torch.tensor([1.0]))


def test_sin_interval_detects_peaks_and_troughs():
    lo, hi = RULES["Sin"].interval(torch.tensor([1.0, 4.0, 0.1]), torch.tensor([2.0, 5.0, 0.2]))
    torch.testing.assert_close(hi[:2], torch.tensor([1.0, math.sin(4.0)]))
    torch.testing.assert_close(lo[:2], torch.tensor([math.sin(1.0), -1.0]))
    torch.testing.assert_close(lo[2], torch.tensor(math.sin(0.1)))


def test_reciprocal_straddling_zero_gives_no_information():
    rel = RULES["Reciprocal"].relax(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0]), None)
    assert torch.isinf(rel.lower_bias).all() and torch.isinf(rel.upper_bias).all()
    assert (rel.lower_slope == 0).all() and (rel.upper_slope == 0).all()


def test_exp_overflow_gives_no_information_not_nan():
    rel = RULES["Exp"].relax(torch.tensor([0.0, 100.0]), torch.tensor([1e4, 200.0]), None)
    assert rel.upper_bias[0] == float("inf") and rel.upper_slope[0] == 0
    assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)


def test_bind_rejects_unknown_attributes():
    with pytest.raises(ValueError):
        make_rule("LeakyRelu", {"beta": 1.0})
    with pytest.raises(ValueError):
        make_rule("Sigmoid", {"alpha": 1.0})
    with pytest.raises(KeyError):
        make_rule("NoSuchOp")


@pytest.mark.parametrize("op,attrs", [
    ("Elu", {"alpha": float("nan")}), ("Elu", {"beta": 1.0}), ("Celu", {"alpha": 0.0}),
    ("Celu", {"alpha": float("inf")}), ("Selu", {"gamma": float("-inf")}),
    ("Shrink", {"lambd": float("nan")}), ("Shrink", {"bias": float("inf")}),
    ("ThresholdedRelu", {"alpha": float("inf")}), ("Gelu", {"approximate": "erf"}),
    ("HardSwish", {"alpha": 0.2}), ("Mish", {"alpha": 1.0})])
def test_bind_rejects_bad_activation_attributes(op, attrs):
    with pytest.raises(ValueError, match=op):
        make_rule(op, attrs)


@pytest.mark.parametrize("op,attrs,kinks,linear", [
    ("Elu", {}, (), False), ("Elu", {"alpha": 0.5}, (0.0,), False),
    ("Celu", {"alpha": 2.0}, (), False), ("Selu", {}, (0.0,), False),
    ("Selu", {"alpha": 1.0}, (), False), ("HardSwish", {}, (-3.0, 3.0), False),
    ("Softsign", {}, (), False), ("Atan", {}, (), False), ("Mish", {}, (), False),
    ("LogSigmoid", {}, (), False), ("Gelu", {"approximate": "tanh"}, (), False),
    ("Shrink", {}, (-0.5, 0.5), True), ("Shrink", {"bias": 0.5, "lambd": 0.5}, (-0.5, 0.5), True),
    ("Shrink", {"lambd": 0.0}, (), True), ("Shrink", {"bias": 1.0, "lambd": 0.0}, (0.0,), True),
    ("Shrink", {"bias": 0.25, "lambd": -0.5}, (0.5,), True),
    ("ThresholdedRelu", {}, (1.0,), True), ("ThresholdedRelu", {"alpha": 0.0}, (0.0,), True),
    ("ThresholdedRelu", {"alpha": -1.0}, (-1.0,), True)])
def test_activation_kinks_are_bound_from_attributes(op, attrs, kinks, linear):
    rule = make_rule(op, attrs)
    assert rule.kinks == kinks and rule.piecewise_linear == linear


def test_gelu_approximate_none_is_unchanged_and_tanh_is_a_second_curve():
    assert make_rule("Gelu", {"approximate": "none"}) is RULES["Gelu"]
    tanh_gelu = make_rule("Gelu", {"approximate": b"tanh"})
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(tanh_gelu.evaluate(x),
                               torch.nn.functional.gelu(x, approximate="tanh"))


@pytest.mark.parametrize("op,attrs,lower,upper", [
    ("Shrink", {}, 0.6, 3.0), ("Shrink", {}, -0.4, 0.5), ("Shrink", {"bias": 0.5}, -4.0, -0.5),
    ("ThresholdedRelu", {}, 1.5, 9.0), ("ThresholdedRelu", {}, -7.0, 1.0),
    ("HardSwish", {}, 3.0, 8.0), ("HardSwish", {}, -9.0, -3.0), ("Elu", {"alpha": 2.0}, 0.0, 5.0)])
def test_piecewise_activations_are_exact_on_one_linear_piece(op, attrs, lower, upper):
    rule = make_rule(op, attrs)
    lo, up = torch.tensor([lower]), torch.tensor([upper])
    rel = rule.relax(lo, up, None)
    x = torch.linspace(lower, upper, 101)
    y = rule.evaluate(x.double())
    for slope, bias in ((rel.lower_slope, rel.lower_bias), (rel.upper_slope, rel.upper_bias)):
        torch.testing.assert_close(slope * x.double() + bias, y, atol=1e-5, rtol=1e-6)


def test_hardshrink_lines_respect_the_one_sided_limits_at_the_jumps():
    """On [0.5, 2] Hardshrink is 0 at 0.5 and x just after it: an upper line must pass
    above (0.5, 0.5), the limit from the right, not only above f(0.5) = 0."""
    rule = make_rule("Shrink", {})
    rel = rule.relax(torch.tensor([0.5]), torch.tensor([2.0]), None)
    assert rel.upper_slope * 0.5 + rel.upper_bias >= 0.5
    lo, hi = rule.interval(torch.tensor([-0.5]), torch.tensor([0.5]))
    assert lo == 0.0 and hi == 0.0            # both ends map to 0, the open pieces are outside
    lo, hi = rule.interval(torch.tensor([-0.5]), torch.tensor([0.75]))
    assert lo == 0.0 and hi >= 0.75

def test_relaxations_work_on_any_shape_and_float64():
    lower = torch.linspace(-3, 1, 24, dtype=torch.float64).reshape(2, 3, 4)
    upper = lower + torch.linspace(0, 2, 24, dtype=torch.float64).reshape(2, 3, 4)
    for op, rule in RULES.items():
        if rule.num_inputs != 1:
            continue
        lo, up = (lower.abs(), upper.abs() + lower.abs()) if rule.input_range[0] >= 0 \
            else (lower, upper)
        rel = rule.relax(lo, up, None)
        assert rel.lower_slope.shape == lo.shape and rel.upper_bias.dtype == torch.float64, op
        if rule.num_params:
            params = rule.init_params(lo, up)
            assert params.shape == (rule.num_params, 2, 3, 4)
            rule.relax(lo, up, params)


@pytest.mark.parametrize("rule", [r for r in RULES.values() if r.num_inputs == 1],
                         ids=lambda r: r.op_type)
def test_relaxation_is_sound_in_float64(rule):
    """1024 boxes x 32 points, default and random parameters, with float64 bounds."""
    lower, upper = random_boxes(1024, seed=12, positive=rule.input_range[0] >= 0)
    x = sample_in_box(lower, upper, 32).double()
    y = rule.evaluate(x)
    chosen = [None]
    if rule.num_params:
        chosen.append(_random_params(rule, lower, upper, seed=13).double())
    for params in chosen:
        rel = rule.relax(lower.double(), upper.double(), params)
        assert rel.lower_bias.dtype == torch.float64
        assert_below(rel.lower_slope[:, None], rel.lower_bias[:, None], x, y, what="f64 lower")
        assert_below(-rel.upper_slope[:, None], -rel.upper_bias[:, None], x, -y, what="f64 upper")


# ---- the closed-form (fast) paths: chunking, fallbacks, gradients ----

FAST_OPS = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Exp", "Pow", "Reciprocal"]


@pytest.mark.parametrize("op", FAST_OPS)
def test_fast_relaxation_is_sound_on_a_large_chunked_batch(op):
    """More than two CPU chunks (bounds.ops._closed_form.CHUNK), default and random params,
    with bounds given as a non-contiguous (expanded) view as the engine passes them."""
    rule = RULES[op]
    lower, upper = random_boxes(3 * 32768 + 123, seed=21, positive=rule.input_range[0] >= 0)
    x = sample_in_box(lower, upper, 8)
    y = rule.evaluate(x.double())
    rows = 2
    lo_rows = lower.unsqueeze(0).expand(rows, -1)
    up_rows = upper.unsqueeze(0).expand(rows, -1)
    choices = [None]
    if rule.num_params:
        params = _random_params(rule, lower, upper, seed=22)
        choices.append(params.unsqueeze(1).expand(rule.num_params, rows, -1))
    for params in choices:
        rel = rule.relax(lo_rows, up_rows, params)
        assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
        for r in range(rows):
            assert_below(rel.lower_slope[r, :, None], rel.lower_bias[r, :, None], x, y,
                         what=f"{op} chunked lower")
            assert_below(-rel.upper_slope[r, :, None], -rel.upper_bias[r, :, None], x, -y,
                         what=f"{op} chunked upper")


@pytest.mark.parametrize("op", FAST_OPS)
def test_fast_relaxation_falls_back_soundly_on_huge_and_infinite_bounds(op):
    rule = RULES[op]
    lower, upper = random_boxes(2048, seed=23)
    lower[::7], upper[::11] = -1e20, 3e18
    lower[::13], upper[::17] = float("-inf"), float("inf")
    upper = torch.maximum(upper, lower)
    rel = rule.relax(lower, upper, None)
    assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
    finite = torch.isfinite(lower) & torch.isfinite(upper)
    lo, up = lower[finite], upper[finite]
    x = sample_in_box(lo, up, 16)
    y = rule.evaluate(x.double())
    assert_below(rel.lower_slope[finite][:, None], rel.lower_bias[finite][:, None], x, y,
                 what=op + " fallback lower")
    assert_below(-rel.upper_slope[finite][:, None], -rel.upper_bias[finite][:, None], x, -y,
                 what=op + " fallback upper")


def _reference_rule(op: str) -> OpRule:
    from genbab.bounds.ops import exp, pow, reciprocal, sigmoid, tanh
    if op in ("Sigmoid", "Tanh"):
        return (sigmoid.SIGMOID_SHAPE if op == "Sigmoid" else tanh.TANH_SHAPE).reference
    if op == "Pow":
        return _pow_reference()
    return {"Exp": exp.EXP_SHAPE, "Reciprocal": reciprocal.RECIPROCAL_SHAPE}[op].reference


def _pow_reference() -> OpRule:
    from genbab.bounds.ops import pow
    return pow.SQUARE_SHAPE.reference


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Exp", "Pow", "Reciprocal"])
def test_tangent_parameter_gradients_match_the_exact_construction(op):
    """The fast params path returns exact values with analytic gradients (envelope theorem);
    they must agree with autograd through the float64 exact-offset reference rule."""
    reference = _reference_rule(op)
    gen = torch.Generator().manual_seed(5)
    lower = torch.rand(512, generator=gen) * 8 - 6
    upper = lower + torch.rand(512, generator=gen) * 6 + 0.1
    if op == "Reciprocal":           # boxes on both sides of the pole
        lower, upper = lower.abs() + 0.5, upper.abs() + 0.5
        lower, upper = torch.minimum(lower, upper), torch.maximum(lower, upper)
        lower[::2], upper[::2] = -upper[::2], -lower[::2]
    params = lower + (upper - lower) * torch.rand(2, 512, generator=gen)
    probe = lower + (upper - lower) * torch.rand(512, generator=gen)
    grads = []
    for rule in (RULES[op], reference):
        p = params.clone().requires_grad_(True)
        rel = rule.relax(lower, upper, p)
        loss = (rel.lower_slope * probe + rel.lower_bias).sum() \
            - (rel.upper_slope * probe + rel.upper_bias).sum()
        loss.backward()
        grads.append(p.grad)
    if op in ("Exp", "Pow", "Reciprocal"):   # the chord side takes no parameter (it dominates)
        side = 1 if op != "Reciprocal" else None
        if side is not None:
            grads[1][side] = 0.0
        else:                                # x > 0: upper is the chord; x < 0: lower is
            grads[1][1, 1::2] = 0.0
            grads[1][0, ::2] = 0.0
    torch.testing.assert_close(grads[0], grads[1].float(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("op", FAST_OPS)
def test_fast_rules_are_differentiable_in_the_bounds(op):
    """Bounds that require gradients take the exact reference construction (autograd-safe)."""
    rule = RULES[op]
    lower = torch.linspace(-3, 2, 64).requires_grad_(True)
    upper = lower + 1.5
    params = rule.init_params(lower.detach(), upper.detach()).requires_grad_(True)
    for chosen in (None, params):
        rel = rule.relax(lower, upper, chosen)
        (rel.lower_bias.sum() - rel.upper_bias.sum() + rel.lower_slope.sum()).backward()
        assert lower.grad is not None and torch.isfinite(lower.grad).all()
        lower.grad = None


def test_mul_fast_path_is_sound_chunked_and_matches_exact_gradients():
    n = 3 * 32768 + 5
    xl, xu = random_boxes(n, seed=31)
    yl, yu = random_boxes(n, seed=32)
    yl, yu = yl[torch.randperm(n, generator=torch.Generator().manual_seed(3))], \
        yu[torch.randperm(n, generator=torch.Generator().manual_seed(3))]
    lower, upper = (xl, yl), (xu, yu)
    gen = torch.Generator().manual_seed(4)
    rule = RULES["Mul"]
    for params in (None, 3 * torch.rand(2, n, generator=gen) - 1):
        rel = rule.relax(lower, upper, params)
        for tx, ty in ((0, 0), (0, 1), (1, 0), (1, 1), (0.3, 0.7)):
            x = torch.clamp((xl.double() + tx * (xu.double() - xl.double())).float(), xl, xu)
            y = torch.clamp((yl.double() + ty * (yu.double() - yl.double())).float(), yl, yu)
            z = x.double() * y.double()
            assert_below(rel.lower_x, rel.lower_y.double() * y.double()
                         + rel.lower_bias.double(), x, z, what="Mul chunked lower")
            assert_below(-rel.upper_x, -(rel.upper_y.double() * y.double()
                                         + rel.upper_bias.double()), x, -z,
                         what="Mul chunked upper")
    from genbab.bounds.ops.mul import mul_relax_exact
    g = torch.Generator().manual_seed(8)      # non-degenerate boxes: no ties between corners
    lo_xy = [torch.rand(512, generator=g) * 4 - 2 for _ in range(2)]
    small = tuple(lo_xy), tuple(t + torch.rand(512, generator=g) + 0.5 for t in lo_xy)
    probe = [(lo + 0.4 * (up - lo)) for lo, up in zip(*small)]
    grads = []
    for relax in (rule.relax, mul_relax_exact):
        p = torch.rand(2, 512, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
        rel = relax(*small, p)
        ((rel.lower_x * probe[0] + rel.lower_y * probe[1] + rel.lower_bias).sum()
         - (rel.upper_x * probe[0] + rel.upper_y * probe[1] + rel.upper_bias).sum()).backward()
        grads.append(p.grad)
    finite = torch.isfinite(grads[1]).all(0)
    torch.testing.assert_close(grads[0][:, finite], grads[1][:, finite], rtol=1e-3, atol=1e-3)
