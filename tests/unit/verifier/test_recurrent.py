"""ONNX LSTM / GRU / RNN nodes, unrolled by ``verifier/onnx_recurrent.py``: every variant
against onnxruntime, torch exports, bound soundness on the unrolled graph, and end to end.

onnxruntime runs only layout 0, so a layout-1 node is compared with the same node in layout 0
between Transposes."""
from __future__ import annotations

import io
import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.bounds.engine import output_bounds
from genbab.verifier.errors import ModelError
from genbab.verifier.forward import FORWARD, evaluate
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions

pytestmark = pytest.mark.usefixtures("one_thread")

FLOAT = TensorProto.FLOAT
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = ("Y", "Y_h", "Y_c")


@dataclass(frozen=True)
class Case:
    """One recurrent node to build; ``attrs`` go onto the node verbatim."""

    op: str
    direction: str = "forward"
    layout: int = 0
    output: int = 0                 # index into OUTPUTS
    hidden: int = 3
    input_size: int = 2
    seq: int = 4
    batch: int = 1
    bias: bool = True
    initial: str = "absent"         # absent | const | zero | input (computed from x)
    peepholes: bool = False
    seq_lens: int | None = None     # one length for every batch entry
    opset: int = 14
    attrs: dict = field(default_factory=dict)

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def x_shape(self) -> tuple[int, int, int]:
        seq_first = (self.seq, self.batch, self.input_size)
        return seq_first if self.layout == 0 else (self.batch, self.seq, self.input_size)


def case_id(case: Case) -> str:
    parts = [case.op, case.direction[:3], f"l{case.layout}", OUTPUTS[case.output],
             f"h{case.hidden}", f"b{case.batch}", f"op{case.opset}", case.initial]
    parts += [name for name, on in (("nobias", not case.bias), ("P", case.peepholes)) if on]
    parts += [f"len{case.seq_lens}"] if case.seq_lens is not None else []
    parts += [f"{k}={v}" for k, v in case.attrs.items()]
    return "-".join(str(p) for p in parts)


def random_weights(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    """W, R, B, P and layout-0 initial states ``(D, batch, H)``."""
    rng = np.random.default_rng(seed)
    d, rows, h = case.directions, GATES[case.op] * case.hidden, case.hidden
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return {"W": normal(d, rows, case.input_size), "R": normal(d, rows, h),
            "B": normal(d, 2 * rows), "P": normal(d, 3 * h),
            "initial_h": normal(d, case.batch, h), "initial_c": 2 * normal(d, case.batch, h)}


def _state_input(case: Case, weights: dict, what: str, layout: int,
                 nodes: list, inits: list) -> str:
    """initial_h / initial_c in ``layout``: a constant, or computed from the network input."""
    value = weights[what] if case.initial != "zero" else np.zeros_like(weights[what])
    value = value if layout == 0 else value.transpose(1, 0, 2)
    inits.append(numpy_helper.from_array(np.ascontiguousarray(value), f"{what}_value"))
    if case.initial != "input":
        return f"{what}_value"
    nodes += [helper.make_node("ReduceSum", ["x"], [f"{what}_sum"], keepdims=0),
              helper.make_node("Add", [f"{what}_value", f"{what}_sum"], [f"{what}_pre"]),
              helper.make_node("Tanh", [f"{what}_pre"], [what])]
    return what


def recurrent_model(case: Case, weights: dict, reference: bool = False) -> onnx.ModelProto:
    """A one-input, one-output model around the node of ``case``; ``reference`` builds the
    layout-0 equivalent of a layout-1 node, for onnxruntime."""
    layout = 0 if reference else case.layout
    nodes: list = []
    inits = [numpy_helper.from_array(weights[k], k) for k in ("W", "R")]
    inputs = ["x", "W", "R", "", "", "", "", ""]
    if case.bias:
        inputs[3] = "B"
        inits.append(numpy_helper.from_array(weights["B"], "B"))
    if case.seq_lens is not None:
        inputs[4] = "sequence_lens"
        lens = np.full(case.batch, case.seq_lens, dtype=np.int32)
        inits.append(numpy_helper.from_array(lens, "sequence_lens"))
    if case.initial != "absent":
        inputs[5] = _state_input(case, weights, "initial_h", layout, nodes, inits)
        if case.op == "LSTM":
            inputs[6] = _state_input(case, weights, "initial_c", layout, nodes, inits)
    if case.peepholes:
        inputs[7] = "P"
        inits.append(numpy_helper.from_array(weights["P"], "P"))
    while inputs[-1] == "":
        inputs.pop()
    if reference and case.layout == 1:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_seq_first"], perm=[1, 0, 2]))
        inputs[0] = "x_seq_first"
    outputs = [""] * (3 if case.op == "LSTM" else 2)
    outputs[case.output] = "rnn_out"
    attrs = dict(case.attrs, hidden_size=case.hidden, direction=case.direction)
    if layout:
        attrs["layout"] = layout
    nodes.append(helper.make_node(case.op, inputs, outputs, name="rnn", **attrs))
    result = "rnn_out"
    if reference and case.layout == 1:
        perm = [2, 0, 1, 3] if case.output == 0 else [1, 0, 2]
        nodes.append(helper.make_node("Transpose", ["rnn_out"], ["y"], perm=perm))
        result = "y"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, case.x_shape)],
                              [helper.make_tensor_value_info(result, FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return model


def max_rel_error(case: Case, samples: int = 6, seed: int = 1) -> float:
    """``max |ours - ort| / max(1, max |ort|)`` over random inputs in [-2, 2]."""
    weights = random_weights(case)
    graph = load_model(recurrent_model(case, weights))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    reference = recurrent_model(case, weights, reference=True).SerializeToString()
    session = ort.InferenceSession(reference, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).uniform(-2, 2, (samples, *case.x_shape)).astype(np.float32)
    theirs = np.stack([session.run(None, {"x": point})[0] for point in x]).astype(np.float64)
    with torch.no_grad():
        ours = evaluate(graph, torch.from_numpy(x)).double().numpy()
    assert ours.shape == theirs.shape
    scale = np.maximum(1.0, np.abs(theirs).reshape(samples, -1).max(axis=1))
    return float((np.abs(ours - theirs).reshape(samples, -1).max(axis=1) / scale).max())


# -- the variants ---------------------------------------------------------------------------
DIRECTIONS = ("forward", "reverse", "bidirectional")


def _layout_cases() -> list[Case]:
    cases = []
    for direction, layout in itertools.product(DIRECTIONS, (0, 1)):
        cases += [Case("LSTM", direction, layout, 0, initial="const", peepholes=True),
                  Case("LSTM", direction, layout, 1),
                  Case("LSTM", direction, layout, 2, bias=False, initial="const"),
                  Case("GRU", direction, layout, 0, initial="const"),
                  Case("GRU", direction, layout, 1, attrs={"linear_before_reset": 1}),
                  Case("GRU", direction, layout, 0, bias=False,
                       attrs={"linear_before_reset": 1}),
                  Case("RNN", direction, layout, 0, initial="const"),
                  Case("RNN", direction, layout, 1, bias=False)]
    return cases


LSTM_CASES = [
    Case("LSTM", attrs={"clip": 0.3}, initial="const", peepholes=True),
    Case("LSTM", "bidirectional", output=2, attrs={"clip": 0.5}, initial="const"),
    Case("LSTM", output=2, attrs={"input_forget": 1}, initial="const", peepholes=True),
    Case("LSTM", "bidirectional", 1, attrs={"input_forget": 1}),
    Case("LSTM", initial="zero", output=2),
    Case("LSTM", initial="input", hidden=2, peepholes=True),
    Case("LSTM", "bidirectional", 1, initial="input", output=1),
    Case("LSTM", hidden=1, input_size=3),
    Case("LSTM", hidden=6, seq=2, initial="const"),
    Case("LSTM", batch=2, initial="const", peepholes=True),
    Case("LSTM", "bidirectional", 1, 1, batch=2, initial="const"),
    Case("LSTM", opset=7, initial="const", peepholes=True),
    Case("LSTM", "reverse", output=2, opset=7),
    Case("LSTM", seq_lens=4, initial="const"),
    Case("LSTM", seq_lens=2, output=0, initial="const"),
    Case("LSTM", "reverse", seq_lens=3, output=1, initial="const"),
    Case("LSTM", "bidirectional", seq_lens=2, output=0, batch=2),
    Case("LSTM", "bidirectional", seq_lens=3, output=2, initial="const"),
    Case("LSTM", attrs={"activations": ["HardSigmoid", "LeakyRelu", "Affine"],
                        "activation_alpha": [0.3, 0.2, 0.7], "activation_beta": [0.4, -0.1]},
         initial="const", peepholes=True),
    Case("LSTM", attrs={"activations": ["Sigmoid", "Elu", "Softsign"],
                        "activation_alpha": [0.8]}, initial="const"),
    Case("LSTM", attrs={"activations": ["HardSigmoid", "ScaledTanh", "Softplus"],
                        "activation_alpha": [0.25, 1.5], "activation_beta": [0.55, 0.6]}),
    Case("LSTM", "bidirectional", output=1,
         attrs={"activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Relu", "Softsign"]},
         initial="const"),
    Case("LSTM", attrs={"activations": ["sigmoid", "tanh", "elu"]}, initial="const"),
    Case("LSTM", attrs={"activations": ["Sigmoid", "Tanh", "Tanh"], "clip": 0.2,
                        "input_forget": 1}, initial="const", output=1, peepholes=True),
]

GRU_CASES = [
    Case("GRU", attrs={"clip": 0.3}, initial="const"),
    Case("GRU", "bidirectional", attrs={"clip": 0.4, "linear_before_reset": 1}, initial="const"),
    Case("GRU", attrs={"linear_before_reset": 0}, initial="input"),
    Case("GRU", "reverse", 1, attrs={"linear_before_reset": 1}, initial="input"),
    Case("GRU", initial="zero", attrs={"linear_before_reset": 1}),
    Case("GRU", hidden=1, batch=2, initial="const"),
    Case("GRU", hidden=5, seq=3, attrs={"linear_before_reset": 1}, initial="const"),
    Case("GRU", opset=7, initial="const"),
    Case("GRU", "bidirectional", opset=7, output=1, attrs={"linear_before_reset": 1}),
    Case("GRU", seq_lens=4),
    Case("GRU", seq_lens=2, initial="const"),
    Case("GRU", "reverse", seq_lens=3, output=1, initial="const"),
    Case("GRU", "bidirectional", 1, seq_lens=2, batch=2, attrs={"linear_before_reset": 1}),
    Case("GRU", attrs={"activations": ["HardSigmoid", "Softsign"]}, initial="const"),
    Case("GRU", attrs={"activations": ["Sigmoid", "LeakyRelu"], "activation_alpha": [0.1],
                       "linear_before_reset": 1}, initial="const"),
    Case("GRU", attrs={"activations": ["HardSigmoid", "ScaledTanh"],
                       "activation_alpha": [0.3, 0.9], "activation_beta": [0.45, 1.3]}),
    Case("GRU", "bidirectional", attrs={"activations": ["Sigmoid", "Elu", "HardSigmoid",
                                                        "Affine"],
                                        "activation_alpha": [0.6, 0.25, 0.5],
                                        "activation_beta": [0.45, 0.1]}, initial="const"),
    Case("GRU", attrs={"activations": ["Sigmoid", "Softplus"], "clip": 0.8}, initial="const"),
]

RNN_ACTIVATIONS = [
    {"activations": ["Relu"]}, {"activations": ["Sigmoid"]}, {"activations": ["Softsign"]},
    {"activations": ["Softplus"]},
    {"activations": ["LeakyRelu"], "activation_alpha": [0.2]},
    {"activations": ["Elu"], "activation_alpha": [0.7]},
    {"activations": ["HardSigmoid"], "activation_alpha": [0.3], "activation_beta": [0.4]},
    {"activations": ["Affine"], "activation_alpha": [0.6], "activation_beta": [0.2]},
    {"activations": ["ScaledTanh"], "activation_alpha": [1.5], "activation_beta": [0.5]},
    {"activations": ["Tanh"], "clip": 0.5},
    {"activations": ["Relu"], "clip": 0.7},
]
RNN_CASES = [Case("RNN", attrs=a, initial="const") for a in RNN_ACTIVATIONS] + [
    Case("RNN", "bidirectional", attrs={"activations": ["Relu", "Tanh"]}),
    Case("RNN", "bidirectional", 1, attrs={"activations": ["LeakyRelu", "Elu"],
                                           "activation_alpha": [0.1, 0.9]}, initial="const"),
    Case("RNN", initial="input", hidden=4),
    Case("RNN", hidden=1, batch=2, initial="zero"),
    Case("RNN", opset=7, initial="const"),
    Case("RNN", "bidirectional", opset=7, output=1, initial="const"),
    Case("RNN", seq_lens=2, initial="const"),
    Case("RNN", "reverse", seq_lens=3, output=1, batch=2),
    Case("RNN", seq_lens=4),
]
ALL_CASES = _layout_cases() + LSTM_CASES + GRU_CASES + RNN_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_recurrent_node_matches_onnxruntime(case):
    assert max_rel_error(case) <= 1e-5


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_thresholded_relu_activation_matches_onnxruntime(op):
    if "ThresholdedRelu" not in FORWARD:
        pytest.skip("verifier.forward has no ThresholdedRelu yet (its rule is being added)")
    acts = {"RNN": ["ThresholdedRelu"], "GRU": ["Sigmoid", "ThresholdedRelu"],
            "LSTM": ["Sigmoid", "ThresholdedRelu", "Tanh"]}[op]
    case = Case(op, attrs={"activations": acts, "activation_alpha": [0.3]}, initial="const")
    assert max_rel_error(case) <= 1e-5


def test_lstm_unrolls_into_one_projection_and_one_recurrent_gemm_per_step():
    case = Case("LSTM", seq=5)
    graph = load_model(recurrent_model(case, random_weights(case)))
    ops = [n.op_type for n in graph.nodes]
    # one Gemm for the input projection of all steps, one per step after the first (h_0 = 0)
    assert ops.count("Gemm") == 1 + (case.seq - 1)
    assert ops.count("Reshape") == 1   # only x, to carry Y's direction axis
    perturbed = {graph.input_name} | {o for n in graph.nodes for o in n.outputs}
    products = [n for n in graph.nodes if n.op_type == "Mul"
                and all(i in perturbed for i in n.inputs)]
    # i*g, o*h(C) at step 0; f*c in addition at every later step
    assert len(products) == 2 + 3 * (case.seq - 1)


# -- errors -----------------------------------------------------------------------------------
def _load(case: Case, weights: dict | None = None):
    return load_model(recurrent_model(case, weights or random_weights(case)))


def test_recurrent_rejects_unknown_activation():
    with pytest.raises(ModelError, match="activation 'Swish' is not supported"):
        _load(Case("RNN", attrs={"activations": ["Swish"]}))


def test_recurrent_rejects_wrong_number_of_activations():
    with pytest.raises(ModelError, match="expected 6 activations"):
        _load(Case("LSTM", "bidirectional", attrs={"activations": ["Sigmoid", "Tanh", "Tanh"]}))


def test_recurrent_rejects_activation_without_agreed_default():
    with pytest.raises(ModelError, match="Affine needs explicit activation_alpha and "
                                         "activation_beta"):
        _load(Case("GRU", attrs={"activations": ["Sigmoid", "Affine"]}))


@pytest.mark.parametrize("attrs", [
    {"activations": ["LeakyRelu"]},
    {"activations": ["Tanh", "LeakyRelu"], "activation_alpha": [0.5]},
], ids=["no-alpha", "alpha-by-use"])
def test_rnn_rejects_ambiguous_activation_alpha(attrs):
    direction = "bidirectional" if len(attrs["activations"]) == 2 else "forward"
    with pytest.raises(ModelError, match="ambiguous"):
        _load(Case("RNN", direction, attrs=attrs))


def test_recurrent_rejects_ragged_sequence_lens():
    case = Case("LSTM", batch=2)
    model = recurrent_model(case, random_weights(case))
    node = model.graph.node[-1]
    node.input.extend([""] * (5 - len(node.input)))
    node.input[4] = "lens"
    model.graph.initializer.append(numpy_helper.from_array(np.array([4, 2], np.int32), "lens"))
    with pytest.raises(ModelError, match="sequence_lens \\[4, 2\\] is not supported"):
        load_model(model)


def test_recurrent_rejects_input_dependent_weights():
    case = Case("GRU")
    model = recurrent_model(case, random_weights(case))
    node = model.graph.node[-1]
    model.graph.node.insert(0, helper.make_node("ReduceSum", ["x"], ["x_sum"], keepdims=0))
    model.graph.node.insert(1, helper.make_node("Add", ["W", "x_sum"], ["W_moving"]))
    node.input[1] = "W_moving"
    with pytest.raises(ModelError, match="W input 'W_moving' depends on the network input"):
        load_model(model)


# -- torch exports ----------------------------------------------------------------------------
class _Classifier(torch.nn.Module):
    def __init__(self, rnn: torch.nn.Module, features: int, classes: int = 3):
        super().__init__()
        self.rnn, self.fc = rnn, torch.nn.Linear(features, classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


TORCH_RNNS = {
    "lstm": lambda: (torch.nn.LSTM(4, 5, batch_first=True), 5),
    "lstm-bidirectional": lambda: (torch.nn.LSTM(4, 5, batch_first=True, bidirectional=True), 10),
    "lstm-2-layers": lambda: (torch.nn.LSTM(4, 5, num_layers=2, batch_first=True), 5),
    "gru": lambda: (torch.nn.GRU(4, 5, batch_first=True), 5),
    "gru-bidirectional": lambda: (torch.nn.GRU(4, 5, batch_first=True, bidirectional=True), 10),
    "rnn-tanh": lambda: (torch.nn.RNN(4, 5, nonlinearity="tanh", batch_first=True), 5),
    "rnn-relu": lambda: (torch.nn.RNN(4, 5, nonlinearity="relu", batch_first=True), 5),
}


def export(module: torch.nn.Module, shape: tuple[int, ...], path) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(*shape),), buffer, dynamo=False,
                          input_names=["input"], output_names=["output"], opset_version=17)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("name", sorted(TORCH_RNNS))
def test_torch_recurrent_export_matches_onnxruntime(name, tmp_path):
    torch.manual_seed(0)
    rnn, features = TORCH_RNNS[name]()
    path = tmp_path / f"{name}.onnx"
    export(_Classifier(rnn, features), (1, 6, 4), path)
    op_type = name.split("-")[0].upper()
    assert op_type in {n.op_type for n in onnx.load(str(path)).graph.node}
    check = compare_with_onnxruntime(path, samples=8)
    assert check.finite
    assert check.max_rel_error <= 1e-5, check


# -- bounds on the unrolled graph -------------------------------------------------------------
def _box_samples(lower: torch.Tensor, upper: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uniform points and every corner of a small box ``(1, k)``."""
    k = lower.shape[1]
    gen = torch.Generator().manual_seed(seed)
    inside = lower + (upper - lower) * torch.rand(n, k, generator=gen)
    corners = torch.tensor(list(itertools.product((0.0, 1.0), repeat=k)))
    return torch.cat([inside, lower + (upper - lower) * corners])


@pytest.mark.parametrize("method", ["crown", "alpha"])
@pytest.mark.parametrize("case", [
    Case("LSTM", hidden=2, seq=3, output=1, initial="const", peepholes=True),
    Case("LSTM", "bidirectional", hidden=2, seq=3, output=2),
    Case("GRU", hidden=2, seq=3, output=0, initial="const"),
    Case("GRU", "reverse", hidden=2, seq=3, output=1, attrs={"linear_before_reset": 1}),
], ids=case_id)
def test_recurrent_bounds_contain_sampled_outputs(case, method):
    graph = _load(case)
    centre = torch.linspace(-0.5, 0.5, graph.input_size).reshape(1, -1)
    lower, upper = centre - 0.2, centre + 0.2
    options = BoundOptions(method=method, alpha_iterations=10)
    low, up = (t.reshape(-1) for t in output_bounds(graph, lower, upper, method=method,
                                                    options=options))
    with torch.no_grad():
        y = evaluate(graph, _box_samples(lower, upper, 3000)).reshape(-1, low.numel())
    assert torch.isfinite(low).all() and torch.isfinite(up).all()
    slack = 1e-5 * (1 + y.abs().max())
    assert (y >= low - slack).all() and (y <= up + slack).all()
    # not vacuous: within a few times the sampled range on this small box
    assert ((up - low) <= 4 * (y.max(0).values - y.min(0).values) + 1e-3).all()


# -- end to end -------------------------------------------------------------------------------
class _TinyLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.LSTM(2, 3, batch_first=True), torch.nn.Linear(3, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


@pytest.mark.parametrize("radius, expected", [(0.01, "VERIFIED"), (5.0, "FALSIFIED")])
def test_verify_tiny_lstm_classifier(radius, expected, tmp_path):
    from genbab import Status, verify
    from genbab.vnnlib import Property

    torch.manual_seed(0)
    module = _TinyLSTM().eval()
    path = tmp_path / "tiny_lstm.onnx"
    export(module, (1, 3, 2), path)
    centre = np.linspace(-0.5, 0.5, 6)
    with torch.no_grad():
        scores = module(torch.tensor(centre, dtype=torch.float32).reshape(1, 3, 2))[0]
    label = int(scores.argmax())
    row = np.zeros((1, 2))
    row[0, label], row[0, 1 - label] = 1.0, -1.0      # violated iff y_label <= y_other
    prop = Property.from_box(centre - radius, centre + radius, [(row, [0.0])])
    result = verify(str(path), prop, timeout=30)
    assert result.status is getattr(Status, expected)
    if expected == "FALSIFIED":
        assert result.counterexample is not None
