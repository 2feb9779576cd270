"""Bound propagation: IBP, CROWN and alpha-CROWN (public API in ``bounds.engine``).

Exports are lazy so that importing ``bounds`` (or ``bounds.ops``) stays cheap and cycle-free."""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "spec_bounds": "bounds.engine", "output_bounds": "bounds.engine", "prove": "bounds.engine",
    "SpecBounds": "bounds.engine", "ProofOutcome": "bounds.engine", "LinearBounds": "bounds.engine",
    "Box": "bounds.box",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bounds' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
