"""Train the bundled demo models, export them to ONNX and write VNN-LIB properties for them.

    python -m benchmarks.demo.generate [--out DIR] [--seed N]

``DIR`` (default ``benchmarks/demo/models``) is one benchmark folder: the models go to
``DIR/onnx/*.onnx`` and the properties to ``DIR/vnnlib/*.vnnlib``. ``instances.csv``,
``expected.csv`` (onnx,vnnlib,expected plus the grid margins) and ``expected_results.csv`` (the
suite runner's ``--expected`` format) go next to it, in ``DIR/..``, with the benchmark column set
to ``DIR``'s name, so that a suite runner given ``--root DIR/..`` finds ``ROOT/<benchmark>/<onnx>``.

Every model takes a ``[1, 2]`` input, so the ground truth of each property is decided here without
a verifier: the margin (positive means safe, see ``_margin``) is evaluated on a dense grid over the
input box, in float64. A property is recorded as ``unsat`` (holds) only if the grid minimum minus a
Lipschitz bound times the largest distance to the nearest grid point is at least ``SAFE_MARGIN``;
it is recorded as ``sat`` (violated) only if some grid point violates it by at least
``SAFE_MARGIN``. Anything in between is refused, so a change of torch version cannot silently ship
a wrong answer.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from genbab.verifier.threads import single_thread

DEFAULT_OUT = Path(__file__).resolve().parent / "models"
SEED = 0
OPSET = 13
GRID_POINTS = 1001          # per input dimension
SAFE_MARGIN = 0.05          # in the property's own units
TIMEOUT_S = 30
CSV_NAMES = ("instances.csv", "expected.csv", "expected_results.csv")


class Sin(nn.Module):
    """Elementwise sine; exported as the ONNX ``Sin`` op."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


ACTIVATION_LIPSCHITZ = {nn.Sigmoid: 0.25, nn.Tanh: 1.0, nn.ReLU: 1.0, Sin: 1.0}  # max slope


@dataclass(frozen=True)
class DemoProperty:
    """A box over the two inputs and the bad output behaviour.

    ``target`` is the true class (classification: bad if some other class scores >= it) or
    ``threshold`` is the output bound (regression: bad if ``Y_0 >= threshold``).
    """
    name: str
    lower: tuple[float, float]
    upper: tuple[float, float]
    description: str
    target: int | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class GroundTruth:
    expected: str               # "sat" (violated) or "unsat" (holds)
    grid_min_margin: float
    margin_lower_bound: float   # grid minimum minus the Lipschitz slack: a sound lower bound


# --------------------------------------------------------------------------- data and training

def make_blobs(generator: torch.Generator, per_class: int = 200) -> tuple[Tensor, Tensor]:
    """Three Gaussian blobs on a circle of radius 1.2; x: (3*per_class, 2), labels: (3*per_class,)."""
    centres = blob_centres()
    x = torch.cat([c + 0.35 * torch.randn(per_class, 2, generator=generator) for c in centres])
    labels = torch.arange(3).repeat_interleave(per_class)
    return x, labels


def blob_centres() -> Tensor:
    """(3, 2): the blob centres at angles 90, 210 and 330 degrees."""
    angles = torch.tensor([90.0, 210.0, 330.0], dtype=torch.float64) * math.pi / 180
    return (1.2 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def smooth_target(x: Tensor) -> Tensor:
    """The regression target on [-1, 1]^2: (batch, 2) -> (batch, 1)."""
    return (torch.sin(2 * x[:, :1]) * torch.cos(1.5 * x[:, 1:]) + 0.3 * x[:, 1:] ** 2)


def mlp(hidden: tuple[nn.Module, nn.Module], outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 16), hidden[0], nn.Linear(16, 16), hidden[1],
                         nn.Linear(16, outputs))


def fit(model: nn.Module, x: Tensor, y: Tensor, loss: Callable, steps: int, lr: float) -> float:
    """Full-batch Adam; returns the final training loss."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        value = loss(model(x), y)
        value.backward()
        optimiser.step()
    return float(value.detach())


def train_models(seed: int) -> dict[str, nn.Sequential]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_cls, labels = make_blobs(generator)
    x_reg = 2 * torch.rand(512, 2, generator=generator) - 1
    y_reg = smooth_target(x_reg)
    models = {
        "sigmoid_mlp": mlp((nn.Sigmoid(), nn.Sigmoid()), 3),
        "relu_mlp": mlp((nn.ReLU(), nn.ReLU()), 3),
        "sin_tanh": mlp((Sin(), nn.Tanh()), 1),
    }
    cross_entropy = nn.CrossEntropyLoss()
    fit(models["sigmoid_mlp"], x_cls, labels, cross_entropy, steps=300, lr=0.05)
    fit(models["relu_mlp"], x_cls, labels, cross_entropy, steps=300, lr=0.02)
    fit(models["sin_tanh"], x_reg, y_reg, nn.MSELoss(), steps=800, lr=0.02)
    return {name: model.eval() for name, model in models.items()}


# --------------------------------------------------------------------------- ground truth

def _margin(outputs: Tensor, prop: DemoProperty) -> Tensor:
    """(batch, m) -> (batch,): positive where the bad behaviour does not happen, <= 0 where it does."""
    if prop.threshold is not None:
        return prop.threshold - outputs[:, 0]
    others = torch.cat([outputs[:, :prop.target], outputs[:, prop.target + 1:]], dim=1)
    return outputs[:, prop.target] - others.max(dim=1).values


def margin_lipschitz(model: nn.Sequential, prop: DemoProperty) -> float:
    """An upper bound on the L2 Lipschitz constant of the margin, from spectral norms."""
    layers = list(model)
    weights = {index: layer.weight.detach().double() for index, layer in enumerate(layers)
               if isinstance(layer, nn.Linear)}
    constant = 1.0
    for index, layer in enumerate(layers[:-1]):
        if index in weights:
            constant *= float(torch.linalg.matrix_norm(weights[index], ord=2))
        else:
            constant *= ACTIVATION_LIPSCHITZ[type(layer)]
    last = weights[len(layers) - 1]
    if prop.threshold is not None:
        rows = last[:1]
    else:
        rows = last[prop.target] - torch.cat([last[:prop.target], last[prop.target + 1:]])
    return constant * float(torch.linalg.vector_norm(rows, dim=1).max())


def grid_outputs(model: nn.Module, lower: tuple[float, float], upper: tuple[float, float]
                 ) -> Tensor:
    """(GRID_POINTS**2, m): the model on the box grid, in float64, in cache-sized chunks."""
    float64 = copy.deepcopy(model).double()
    grid = box_grid(lower, upper, GRID_POINTS)
    with torch.inference_mode():
        return torch.cat([float64(chunk) for chunk in grid.split(65536)])


def box_grid(lower: tuple[float, float], upper: tuple[float, float], points: int) -> Tensor:
    """(points*points, 2) float64 grid including the box corners."""
    axes = [torch.linspace(lo, hi, points, dtype=torch.float64) for lo, hi in zip(lower, upper)]
    return torch.cartesian_prod(*axes)


def ground_truth(model: nn.Sequential, prop: DemoProperty) -> GroundTruth:
    outputs = grid_outputs(model, prop.lower, prop.upper)
    grid_min = float(_margin(outputs, prop).min())
    half_steps = [(hi - lo) / (GRID_POINTS - 1) / 2 for lo, hi in zip(prop.lower, prop.upper)]
    slack = margin_lipschitz(model, prop) * math.hypot(*half_steps)
    if grid_min - slack >= SAFE_MARGIN:
        return GroundTruth("unsat", grid_min, grid_min - slack)
    if grid_min <= -SAFE_MARGIN:
        return GroundTruth("sat", grid_min, grid_min - slack)
    raise RuntimeError(f"{prop.name}: grid minimum margin {grid_min:.4f} (Lipschitz slack "
                       f"{slack:.4f}) is too close to 0 to decide; choose another box")


# --------------------------------------------------------------------------- properties

def _box(centre: Tensor, radius: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """An L-inf ball, rounded to 4 decimals so the file shows exactly the box that was checked."""
    lower = tuple(round(float(c) - radius, 4) for c in centre)
    upper = tuple(round(float(c) + radius, 4) for c in centre)
    return lower, upper


def boundary_point(model: nn.Module, start: Tensor, end: Tensor, target: int) -> Tensor:
    """Bisect the segment start -> end for the point where ``target`` stops being the argmax."""
    lo, hi = 0.0, 1.0
    with torch.inference_mode():
        for _ in range(40):
            mid = (lo + hi) / 2
            point = start + mid * (end - start)
            if int(model(point[None]).argmax()) == target:
                lo = mid
            else:
                hi = mid
    return start + lo * (end - start)


def classifier_properties(name: str, model: nn.Module, safe: int, unsafe: tuple[int, int]
                          ) -> list[DemoProperty]:
    """A box at blob ``safe``'s centre (holds) and one across the ``unsafe`` decision boundary."""
    centres = blob_centres()
    lower, upper = _box(centres[safe], 0.15)
    robust = DemoProperty(f"{name}_robust", lower, upper, target=safe, description=(
        f"class {safe} is robust in an L-inf ball of radius 0.15 around its blob centre"))
    target, other = unsafe
    crossing = boundary_point(model, centres[target], centres[other], target)
    lower, upper = _box(crossing, 0.15)
    boundary = DemoProperty(f"{name}_boundary", lower, upper, target=target, description=(
        f"class {target} in an L-inf ball of radius 0.15 centred on its decision boundary "
        f"with class {other}"))
    return [robust, boundary]


def regression_properties(name: str, model: nn.Sequential) -> list[DemoProperty]:
    """An output bound above the true maximum over a box (holds) and one below it (violated)."""
    lower, upper = (0.25, -0.25), (0.75, 0.25)
    values = grid_outputs(model, lower, upper)[:, 0]
    top = float(values.max())
    high = round(top + 0.15, 4)
    low = round(top - 0.15, 4)
    return [
        DemoProperty(f"{name}_bound_high", lower, upper, threshold=high, description=(
            f"Y_0 stays below {high} (the grid maximum plus 0.15) on the box")),
        DemoProperty(f"{name}_bound_low", lower, upper, threshold=low, description=(
            f"Y_0 stays below {low} (the grid maximum minus 0.15) on the box")),
    ]


# --------------------------------------------------------------------------- writing

def format_vnnlib(prop: DemoProperty, outputs: int, truth: GroundTruth) -> str:
    lines = [f"; genbab demo property {prop.name}: {prop.description}.",
             f"; expected: {truth.expected} (grid min margin {truth.grid_min_margin:.4f}; "
             "written by benchmarks/demo/generate.py)"]
    lines += [f"(declare-const X_{i} Real)" for i in range(len(prop.lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i, (lo, hi) in enumerate(zip(prop.lower, prop.upper)):
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    if prop.threshold is not None:
        lines.append(f"(assert (>= Y_0 {prop.threshold!r}))")
    else:
        lines.append("(assert (or")
        lines += [f"    (and (>= Y_{j} Y_{prop.target}))" for j in range(outputs) if j != prop.target]
        lines.append("))")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _legacy_exporter_quiet() -> Iterator[None]:
    """The TorchScript exporter (``dynamo=False``) warns that it is deprecated; that is known."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def export_onnx(model: nn.Module, path: Path) -> None:
    with _legacy_exporter_quiet():
        torch.onnx.export(model, torch.zeros(1, 2), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"])


def generate(out: Path, seed: int = SEED) -> list[tuple[str, str, GroundTruth]]:
    """Write everything; returns (onnx, vnnlib, ground truth) rows, paths relative to ``out``."""
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "vnnlib").mkdir(parents=True, exist_ok=True)
    rows = []
    with single_thread():
        models = train_models(seed)
        plans = {
            "sigmoid_mlp": classifier_properties("sigmoid_mlp", models["sigmoid_mlp"], 0, (1, 2)),
            "sin_tanh": regression_properties("sin_tanh", models["sin_tanh"]),
            "relu_mlp": classifier_properties("relu_mlp", models["relu_mlp"], 2, (0, 1)),
        }
        for name, props in plans.items():
            model = models[name]
            onnx_rel = f"onnx/{name}.onnx"
            export_onnx(model, out / onnx_rel)
            outputs = model[-1].out_features
            for prop in props:
                truth = ground_truth(model, prop)
                vnnlib_rel = f"vnnlib/{prop.name}.vnnlib"
                (out / vnnlib_rel).write_text(format_vnnlib(prop, outputs, truth))
                rows.append((onnx_rel, vnnlib_rel, truth))
    write_csvs(out, rows)
    return rows


def write_csvs(out: Path, rows: list[tuple[str, str, GroundTruth]]) -> None:
    with open(out.parent / "instances.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["benchmark", "onnx", "vnnlib", "timeout"])
        writer.writerows([out.name, onnx, vnnlib, TIMEOUT_S] for onnx, vnnlib, _ in rows)
    with open(out.parent / "expected.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["onnx", "vnnlib", "expected", "grid_min_margin", "margin_lower_bound"])
        writer.writerows([onnx, vnnlib, t.expected, f"{t.grid_min_margin:.6f}",
                          f"{t.margin_lower_bound:.6f}"] for onnx, vnnlib, t in rows)
    with open(out.parent / "expected_results.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # the suite runner's --expected format
        writer.writerow(["benchmark", "onnx", "vnnlib", "verdict", "note"])
        writer.writerows([out.name, onnx, vnnlib, t.expected,
                          f"demo grid check: min margin {t.grid_min_margin:.4f}"]
                         for onnx, vnnlib, t in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="benchmark folder for onnx/ and vnnlib/; the CSVs go to its parent")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    for onnx_rel, vnnlib_rel, truth in generate(out, args.seed):
        size_kb = (out / onnx_rel).stat().st_size / 1024
        print(f"wrote {out / onnx_rel} ({size_kb:.1f} KB) + {vnnlib_rel}: {truth.expected}, "
              f"grid min margin {truth.grid_min_margin:+.4f}, "
              f"sound lower bound {truth.margin_lower_bound:+.4f}")
    names = ", ".join(str(out.parent / n) for n in CSV_NAMES)
    print(f"wrote {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
