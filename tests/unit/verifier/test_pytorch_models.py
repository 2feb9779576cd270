"""The models a PyTorch user builds, passed to ``verify`` as ``torch.nn.Module`` (exported by
the legacy exporter, as ``verify`` does): every one of them once failed to load or to bound
(LSTM / GRU / RNN nodes, a ViT block's shape-only ``Mod``, HardSwish, Elu, PReLU, Mish,
Hardshrink).  Each must pass ``check-model`` (every op ``verify``, onnxruntime agreement) and
get ``unsat`` at a tiny radius and a confirmed ``sat`` at a huge one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genbab import Status, verify
from genbab.api import export_module
from genbab.model_check import compare_with_onnxruntime
from genbab.support import VERIFY, support_report
from genbab.vnnlib.property import Property

pytestmark = pytest.mark.usefixtures("one_thread")


class _Recurrent(nn.Module):
    def __init__(self, rnn: nn.Module, classes: int = 3):
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size * (2 if rnn.bidirectional else 1)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


class _VitBlock(nn.Module):
    """Patch tokens -> MultiheadAttention + LayerNorm + GeLU MLP -> mean -> linear head."""

    def __init__(self, dim: int = 8, tokens: int = 4, classes: int = 3):
        super().__init__()
        self.embed = nn.Linear(4, dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.1)
        self.attention = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        h = self.embed(x) + self.position
        a, _ = self.attention(h, h, h)
        h = self.norm1(h + a)
        h = self.norm2(h + self.mlp(h))
        return self.head(h.mean(1))


def _mlp(act: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 3))


MODELS = {
    "lstm": (lambda: _Recurrent(nn.LSTM(2, 4, batch_first=True)), (3, 2)),
    "lstm_bidirectional": (lambda: _Recurrent(nn.LSTM(2, 3, batch_first=True,
                                                      bidirectional=True)), (3, 2)),
    "lstm_two_layers": (lambda: _Recurrent(nn.LSTM(2, 3, num_layers=2, batch_first=True)),
                        (3, 2)),
    "gru": (lambda: _Recurrent(nn.GRU(2, 4, batch_first=True)), (3, 2)),
    "rnn": (lambda: _Recurrent(nn.RNN(2, 4, batch_first=True)), (3, 2)),
    "vit_block": (lambda: _VitBlock(), (4, 4)),
    **{name: (lambda act=act: _mlp(act), (4,)) for name, act in {
        "hardswish": nn.Hardswish(), "elu": nn.ELU(), "celu": nn.CELU(0.5), "selu": nn.SELU(),
        "prelu": nn.PReLU(8), "mish": nn.Mish(), "hardshrink": nn.Hardshrink(0.2),
        "softshrink": nn.Softshrink(0.2), "logsigmoid": nn.LogSigmoid(),
        "softsign": nn.Softsign(), "relu6": nn.ReLU6(), "hardtanh": nn.Hardtanh(),
        "silu": nn.SiLU(), "gelu_tanh": nn.GELU(approximate="tanh"),
        "tanhshrink": nn.Tanhshrink()}.items()},
}


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    make, shape = MODELS[name]
    return make().eval(), shape


def _robustness(model: nn.Module, shape, radius: float) -> tuple[Property, int]:
    """Some other class scores at least the predicted one, in the L-inf ball of ``radius``
    around a fixed input."""
    x = torch.linspace(-0.8, 0.9, int(np.prod(shape))).reshape(1, *shape)
    with torch.no_grad():
        logits = model(x).reshape(-1)
    label, n = int(logits.argmax()), logits.numel()
    clauses = []
    for other in range(n):
        if other != label:
            row = np.zeros((1, n))
            row[0, label], row[0, other] = 1.0, -1.0      # violated iff y_label - y_other <= 0
            clauses.append((row, np.zeros(1)))
    flat = x.reshape(-1).numpy().astype(np.float64)
    return Property.from_box(flat - radius, flat + radius, clauses), label


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_passes_check_model(name, tmp_path):
    model, shape = _build(name)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(export_module(model, shape))
    report = support_report(path)
    assert report.level == VERIFY, [o for o in report.ops if o.level != VERIFY]
    check = compare_with_onnxruntime(path, samples=16)
    assert check.finite and check.max_rel_error <= 1e-4, check


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_is_proved_at_a_tiny_radius_and_refuted_at_a_huge_one(name):
    model, shape = _build(name)
    robust, _ = _robustness(model, shape, 1e-4)
    result = verify(model, robust, timeout=20, input_shape=shape)
    assert result.status is Status.VERIFIED, (result.status, result.message)
    broken, label = _robustness(model, shape, 50.0)
    result = verify(model, broken, timeout=20, input_shape=shape)
    assert result.status is Status.FALSIFIED, (result.status, result.message)
    x = torch.tensor(np.asarray(result.counterexample.x), dtype=torch.float32)
    with torch.no_grad():
        logits = model(x.reshape(1, *shape)).reshape(-1)
    others = torch.cat([logits[:label], logits[label + 1:]])
    assert float(others.max()) >= float(logits[label]) - 1e-5   # onnxruntime confirmed it too
