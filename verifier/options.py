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
    rounds: int = 1             # PGD rounds of the first attack (more run later if time is left)
    tolerance: float = 1e-4     # aim this far past each threshold so onnxruntime agrees
    first_share: float = 0.03   # share of the timeout the first attack may use before bounds
    first_max_s: float = 2.0    # ... and at most this long (a 600 s run would spend 18 s)
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
    plane_search: bool = True   # CROWN: choose the planes of terminal products (bounds/planes.py)
    scalar_cuts: bool = False   # CROWN passes stop at one-element tensors and use their linear
    # bounds (bounds/backward.py ``_cut``): faster where many rows pass through them, a little
    # looser where what lies behind one is shared with other paths; input splitting turns it on


@dataclass(frozen=True)
class BranchingOptions:
    """Branch-and-bound after the first bound propagation (algorithms.md 4-6)."""

    enabled: bool = True
    split: Literal["auto", "input", "all", "relu-only"] = "auto"   # auto: input split for
    input_split_max_dim: int = 16        # inputs with at most this many free dimensions
    heuristic: Literal["bbps", "babsr"] = "bbps"
    branch_points: Literal["lut", "midpoint"] = "lut"
    batch_size: int = 128                # domains split per round (children: twice as many)
    input_batch_size: int = 131072       # input splits: most children bounded per round (tiny
    # models: a bound call on thousands of boxes costs little more than on a hundred)
    method: Literal["crown", "alpha"] = "crown"   # bound of the children
    alpha_iterations: int = 5            # per round, warm-started from the parent
    max_domains: int = 500_000           # pool size at which we give up (``unknown``)
    max_memory_gb: float | None = None   # cap on the process's memory (--max-memory); None:
    # size batches and the pool from the free memory (branching/memory.py)
    clip: bool = True                    # input splits: shrink each bounded box to where its
    # linear bounds still allow a violation (branching/clip.py); --no-clip turns it off
    attack_every: int = 4                # PGD inside the worst domains every N rounds
    milp: bool = False                   # --milp: exact HiGHS MILP first, for ReLU chains with
    milp_max_unstable: int = 64          # at most this many unstable ReLUs (after CROWN)
    milp_share: float = 0.5              # of the remaining time
    progress_interval_s: float = 1.0
    neuron_refresh: Literal["after", "fixed", "all"] = "after"   # neuron splits: which
    # intervals children recompute (after: those later than the earliest split tensor)
    bbps_refine: int = 8                 # BBPS: fewest candidates per domain scored by the
    # coupled form (more where branching.bbps.COUPLED_BUDGET allows)
    bbps_arbitrate: bool = True          # BBPS: where BaBSR would split another neuron, bound
    # both picks' children by CROWN and keep the better (branching/neuron_bab.py _arbitrate)
    neuron_method: Literal["crown", "alpha"] = "alpha"   # bound of neuron-split children
    beta_iterations: int = 20            # neuron splits: Adam steps on the split multipliers
    beta_lr: float = 0.1
    neuron_root_iterations: int = 100    # neuron splits: alpha steps of the root bound (every
    # child starts from its parameters; 20 left the root 0.4 looser on eran sigmoid 6x200)
    neuron_tighten_iterations: int = 5   # neuron splits: alpha steps per intermediate tensor
    # when the root's intervals are optimised before branching (0: CROWN intervals)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_domains < 1 or self.input_batch_size < 1:
            raise ValueError("BranchingOptions.batch_size, input_batch_size and max_domains "
                             "must be >= 1")


@dataclass(frozen=True)
class VerifyOptions:
    timeout_s: float = 300.0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    attack: AttackOptions = field(default_factory=AttackOptions)
    bounds: BoundOptions = field(default_factory=BoundOptions)
    branching: BranchingOptions = field(default_factory=BranchingOptions)
    check_with_onnxruntime: bool = True   # never turn off in competition mode

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
