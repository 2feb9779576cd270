"""L-inf robustness properties for the zoo: sample choice, the input box, the VNN-LIB text, and
a PGD label (``sat`` when an attack finds a counterexample that onnxruntime confirms)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from benchmarks.zoo.training import DATA_LOWER, DATA_UPPER, margins, pgd_in_box

ATTACK_STEPS = 50
ATTACK_RESTARTS = 5
ATTACK_SEED = 0


@dataclass(frozen=True)
class RobustnessProperty:
    """Class ``label`` must win everywhere in ``[lower, upper]`` (flat, float32-representable,
    inside the data range): the L-inf ball of ``radius`` around test sample ``sample``."""
    sample: int
    label: int
    radius: float
    lower: np.ndarray
    upper: np.ndarray
    clean_margin: float

    def stem(self, model_name: str) -> str:
        return f"{model_name}_sample{self.sample}_eps{self.radius:g}"


@dataclass(frozen=True)
class AttackOutcome:
    """The lowest margin PGD found in the box; ``confirmed``: onnxruntime on the exported
    model also ranks another class at least as high as the true one at that point."""
    min_margin: float
    confirmed: bool

    @property
    def expected(self) -> str:
        """The suite runner's verdict word: ``sat`` is known, anything else is open."""
        return "sat" if self.confirmed else "unknown"


def ball(x: Tensor, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The flat L-inf ball around ``x`` clipped to the data range, each end rounded inward to
    float32 so that the file states exactly the box the attack searched."""
    centre = x.detach().double().reshape(-1).numpy()
    lower = np.clip(centre - radius, DATA_LOWER, DATA_UPPER)
    upper = np.clip(centre + radius, DATA_LOWER, DATA_UPPER)
    lower32, upper32 = lower.astype(np.float32), upper.astype(np.float32)
    lower32 = np.where(lower32 < lower, np.nextafter(lower32, np.float32(np.inf)), lower32)
    upper32 = np.where(upper32 > upper, np.nextafter(upper32, np.float32(-np.inf)), upper32)
    return lower32.astype(np.float64), upper32.astype(np.float64)


def correct_samples(model: nn.Module, x: Tensor, labels: Tensor, limit: int) -> list[int]:
    """Indices of the first ``limit`` test samples the model classifies correctly."""
    with torch.no_grad():
        right = (model(x).argmax(dim=1) == labels).nonzero()[:, 0]
    return right[:limit].tolist()


def make_property(model: nn.Module, x: Tensor, labels: Tensor, sample: int, radius: float
                  ) -> RobustnessProperty:
    lower, upper = ball(x[sample], radius)
    with torch.no_grad():
        clean = float(margins(model, x[sample:sample + 1], labels[sample:sample + 1])[0])
    return RobustnessProperty(sample, int(labels[sample]), radius, lower, upper, clean)


def attack(model: nn.Module, props: list[RobustnessProperty], input_shape: tuple[int, ...],
           session: ort.InferenceSession) -> list[AttackOutcome]:
    """PGD (``ATTACK_STEPS`` steps, ``ATTACK_RESTARTS`` restarts) inside each property's box,
    all boxes in one batch (the points never leave their boxes); every end point is re-run
    with onnxruntime on the exported model."""
    if not props:
        return []
    lower = torch.from_numpy(np.stack([p.lower for p in props])).float()
    upper = torch.from_numpy(np.stack([p.upper for p in props])).float()
    lower, upper = lower.reshape(-1, *input_shape), upper.reshape(-1, *input_shape)
    labels = torch.tensor([p.label for p in props])
    generator = torch.Generator().manual_seed(ATTACK_SEED)
    points = pgd_in_box(model, lower, upper, labels, ATTACK_STEPS, ATTACK_RESTARTS, generator)
    with torch.no_grad():
        found = margins(model, points, labels).tolist()
    name = session.get_inputs()[0].name
    outcomes = []
    for point, prop, margin in zip(points, props, found):
        output = session.run(None, {name: point[None].numpy()})[0].reshape(-1)
        others = np.delete(output, prop.label)
        outcomes.append(AttackOutcome(margin, bool(others.max() >= output[prop.label])))
    return outcomes


def format_vnnlib(prop: RobustnessProperty, num_outputs: int, header: list[str]) -> str:
    """VNN-COMP's robustness layout: the box as ``(assert (<= X_i hi)) (assert (>= X_i lo))``,
    the violation "some other class scores at least the true one" as one disjunction."""
    lines = [f"; {text}" for text in header]
    lines += [f"(declare-const X_{i} Real)" for i in range(prop.lower.size)]
    lines.append("")
    lines += [f"(declare-const Y_{j} Real)" for j in range(num_outputs)]
    lines += ["", "; input box"]
    for i, (low, high) in enumerate(zip(prop.lower.tolist(), prop.upper.tolist())):
        lines += [f"(assert (<= X_{i} {high!r}))", f"(assert (>= X_{i} {low!r}))"]
    lines += ["", f"; violation: some class scores at least class {prop.label}", "(assert (or"]
    lines += [f"    (and (>= Y_{j} Y_{prop.label}))" for j in range(num_outputs) if j != prop.label]
    lines.append("))")
    return "\n".join(lines) + "\n"


def write_vnnlib(path: Path, prop: RobustnessProperty, num_outputs: int,
                 header: list[str]) -> None:
    path.write_text(format_vnnlib(prop, num_outputs, header))
