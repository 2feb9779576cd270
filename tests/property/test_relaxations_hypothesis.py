"""Hypothesis tests of every registered relaxation over degenerate, tiny, huge and offset boxes
(STYLE.md section 9).  Each example is a batch of boxes built from drawn (centre, width)
pairs, checked at drawn fractions of the box plus both endpoints, for the default relaxation,
for drawn parameters (which ``relax`` must project) and for the interval."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbab.bounds.ops import RULES, make_rule
from genbab.bounds.relaxation import OpRule
from tests.unit.bounds.helpers import assert_below, assert_no_nan

# Every registered unary rule (ONNX default attributes), plus attribute variants whose shape
# differs: continuous / jumping Shrink, ThresholdedRelu through 0 and below it, concave Elu and
# Celu, negative-gamma Selu, tanh-Gelu.
VARIANTS = [("Shrink", {"bias": 0.5, "lambd": 0.5}), ("Shrink", {"bias": 0.25, "lambd": -0.5}),
            ("ThresholdedRelu", {"alpha": 0.0}), ("ThresholdedRelu", {"alpha": -1.0}),
            ("Elu", {"alpha": -0.5}), ("Celu", {"alpha": -1.5}),
            ("Selu", {"alpha": 2.0, "gamma": -1.0}), ("Gelu", {"approximate": "tanh"})]
UNARY = [r for r in RULES.values() if r.num_inputs == 1] + [
    make_rule(op, attrs) for op, attrs in VARIANTS]


pytestmark = pytest.mark.usefixtures("one_thread")

centres = st.one_of(
    st.floats(-5, 5), st.floats(-40, 40), st.floats(-1e4, 1e4),
    st.sampled_from([0.0, 1.5707964, -1.5707964, 3.1415927, 1.4142135, -1.4142135, -0.75,
                     88.7, -88.7, 104.0, 1e4, -1e4, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, -1.5,
                     -2.2563764, 1.4905712, -1.19243, 1.418504, -1.418504,
                     1.5e-39, -1.5e-39, 1e-45, -1e-45, 1.2e-38, -1.2e-38]))   # subnormals
widths = st.one_of(st.just(0.0), st.floats(0, 1e-6), st.sampled_from([1e-45, 3e-39, 2.4e-38]), st.floats(0, 1.0), st.floats(0, 50.0),
                   st.floats(0, 2e4))
boxes = st.lists(st.tuples(centres, widths), min_size=1, max_size=16)
fractions = st.lists(st.floats(0, 1), min_size=1, max_size=8)
params = st.floats(-1e5, 1e5)


def _tensors(rule: OpRule, drawn) -> tuple[torch.Tensor, torch.Tensor]:
    centre = torch.tensor([c for c, _ in drawn], dtype=torch.float64)
    width = torch.tensor([w for _, w in drawn], dtype=torch.float64)
    lower, upper = (centre - width / 2).float(), (centre + width / 2).float()
    upper = torch.maximum(upper, lower)
    if rule.input_range[0] >= 0:
        a, b = lower.abs(), upper.abs()
        lower, upper = torch.minimum(a, b), torch.maximum(a, b)
    return lower, upper


def _points(lower: torch.Tensor, upper: torch.Tensor, fracs: list[float]) -> torch.Tensor:
    t = torch.tensor([0.0, 1.0, *fracs], dtype=torch.float64)
    x = (lower.double()[:, None] + t * (upper.double() - lower.double())[:, None]).float()
    return torch.minimum(torch.maximum(x, lower[:, None]), upper[:, None])


@pytest.mark.parametrize("rule", UNARY, ids=lambda r: f"{r.op_type}{r.attrs or ''}")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=boxes, fracs=fractions, theta=params)
def test_relaxation_holds_at_any_point(rule, drawn, fracs, theta):
    _check_rule(rule, drawn, fracs, theta)


# float32 subnormal boxes, every rule, no luck needed: a LeakyRelu line once cut f on [u, u]
# with u = 1.5e-39 (its chord's width was clamped up to the smallest normal number)
SUBNORMAL_BOXES = [(c, w) for c in (0.0, 1.5e-39, -1.5e-39, 1e-45, -1e-45, 1.1e-38, -1.1e-38)
                   for w in (0.0, 1e-45, 3e-39, 2.4e-38)]


@pytest.mark.parametrize("rule", UNARY, ids=lambda r: f"{r.op_type}{r.attrs or ''}")
def test_relaxation_holds_on_subnormal_boxes(rule):
    for theta in (0.0, 1.0, -1e5, 1e5):
        _check_rule(rule, SUBNORMAL_BOXES, [0.25, 0.5, 0.75], theta)


def _check_rule(rule, drawn, fracs, theta) -> None:
    lower, upper = _tensors(rule, drawn)
    x = _points(lower, upper, fracs)
    y = rule.evaluate(x.double())
    choices = [None]
    if rule.num_params:
        choices.append(torch.full((rule.num_params, *lower.shape), theta))
    for chosen in choices:
        rel = rule.relax(lower, upper, chosen)
        assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
        assert_below(rel.lower_slope[:, None], rel.lower_bias[:, None], x, y,
                     what=f"{rule.op_type} lower")
        assert_below(-rel.upper_slope[:, None], -rel.upper_bias[:, None], x, -y,
                     what=f"{rule.op_type} upper")
    lo, hi = rule.interval(lower, upper)
    zero = torch.zeros_like(x)
    assert_below(zero, lo[:, None].expand_as(x), x, y, what=f"{rule.op_type} interval")
    assert_below(zero, -hi[:, None].expand_as(x), x, -y, what=f"{rule.op_type} interval")


pairs = st.lists(st.tuples(centres, widths, centres, widths), min_size=1, max_size=16)


@settings(max_examples=30, deadline=None)
@given(drawn=pairs, fx=st.floats(0, 1), fy=st.floats(0, 1), r_lo=params, r_up=params)
def test_mul_relaxation_holds_at_any_point(drawn, fx, fy, r_lo, r_up):
    cx, wx, cy, wy = (torch.tensor(v, dtype=torch.float64) for v in zip(*drawn))
    xl, xu = (cx - wx / 2).float(), (cx + wx / 2).float()
    yl, yu = (cy - wy / 2).float(), (cy + wy / 2).float()
    xu, yu = torch.maximum(xu, xl), torch.maximum(yu, yl)
    rule = RULES["Mul"]
    corners = [(0, 0), (0, 1), (1, 0), (1, 1), (fx, fy)]
    for chosen in (None, torch.stack([torch.full_like(xl, r_lo), torch.full_like(xl, r_up)])):
        rel = rule.relax((xl, yl), (xu, yu), chosen)
        lo, hi = rule.interval((xl, yl), (xu, yu))
        for tx, ty in corners:
            x = torch.clamp((xl.double() + tx * (xu.double() - xl.double())).float(), xl, xu)
            y = torch.clamp((yl.double() + ty * (yu.double() - yl.double())).float(), yl, yu)
            z = x.double() * y.double()
            assert_below(rel.lower_x, rel.lower_y.double() * y.double() + rel.lower_bias.double(),
                         x, z, what="Mul lower")
            assert_below(-rel.upper_x, -(rel.upper_y.double() * y.double()
                                         + rel.upper_bias.double()), x, -z, what="Mul upper")
            assert_below(torch.zeros_like(x), lo, x, z, what="Mul interval")
            assert_below(torch.zeros_like(x), -hi, x, -z, what="Mul interval")
