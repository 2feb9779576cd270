"""Typed options.  Each function takes only the sub-options it needs; make variants with
``dataclasses.replace``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class AttackOptions:
    """Random sampling plus PGD with restarts inside each disjunct's box (algorithms.md 7)."""

    samples: int = 256          # uniform random points per disjunct before PGD
    restarts: int = 16          # PGD starting points per clause, besides the box centre
    steps: int = 50             # PGD steps per round
    rounds: int = 4             # PGD rounds with fresh restarts (stop early on success)
    tolerance: float = 1e-4     # aim this far past each threshold so onnxruntime agrees
    first_share: float = 0.1    # share of the timeout the first attack may use before bounds
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "restarts", "steps", "rounds"):
            if getattr(self, name) < 0:
                raise ValueError(f"AttackOptions.{name} must be >= 0")


@dataclass(frozen=True)
class BoundOptions:
    method: Literal["ibp", "crown", "alpha"] = "alpha"
    alpha_iterations: int = 20
    alpha_lr: float = 0.1


@dataclass(frozen=True)
class VerifyOptions:
    timeout_s: float = 300.0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    attack: AttackOptions = field(default_factory=AttackOptions)
    bounds: BoundOptions = field(default_factory=BoundOptions)
    check_with_onnxruntime: bool = True   # never turn off in competition mode

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
