"""Bound propagation: IBP, CROWN and alpha-CROWN (public API in ``genbab.bounds.engine``).

Exports are lazy so that importing ``bounds`` (or ``bounds.ops``) stays cheap and cycle-free."""
from __future__ import annotations

if __name__ != "genbab.bounds":     # the repository root on sys.path makes the old name findable
    raise ImportError(f"{__name__!r} is not an import name: genbab installs one namespace, "
                      "import genbab.bounds instead (see docs/architecture.md)")

from typing import Any

_ENGINE = ("spec_bounds", "output_bounds", "prove", "SpecBounds", "ProofOutcome", "LinearBounds")
_EXPORTS = {**{name: "genbab.bounds.engine" for name in _ENGINE}, "Box": "genbab.bounds.box"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genbab.bounds' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
