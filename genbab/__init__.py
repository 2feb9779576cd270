"""genbab: a verifier for neural networks with general nonlinearities.

The public entry point::

    from genbab import verify, Status, Property
    result = verify("model.onnx", "prop.vnnlib", timeout=60)

Layers, lowest first (docs/architecture.md; ``tests/unit/test_layering.py`` enforces them):
``genbab.verifier`` (graph IR, ONNX loader, forward evaluation, shared types),
``genbab.vnnlib`` (properties), ``genbab.bounds``, ``genbab.lut``, ``genbab.branching``, and on
top the front ends that are this package's own modules (``api``, ``cli``, ``suite``, ...).

Why the path line below: the repository keeps its top-level folders (``verifier/``,
``bounds/``, ...) beside this one, and ``pyproject.toml`` maps them into this namespace when
genbab is installed.  In a source checkout (an editable install, or the repository root on
``sys.path``) the same mapping is made here, so ``genbab.bounds`` is ``<repo>/bounds`` either way.
Exports are lazy so that ``import genbab`` (and the CLI's start) does not pull in torch.
"""
from __future__ import annotations

from pathlib import Path as _Path

_SOURCE_ROOT = _Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "verifier" / "graph.py").is_file():
    __path__.append(str(_SOURCE_ROOT))    # type: ignore[name-defined]   # noqa: F821

__version__ = "0.1.0"

_LAZY = {
    "verify": ("genbab.api", "verify"),
    "load_model": ("genbab.verifier.onnx_loader", "load_model"),
    "Result": ("genbab.verifier.result", "Result"),
    "Status": ("genbab.verifier.result", "Status"),
    "Counterexample": ("genbab.verifier.result", "Counterexample"),
    "VerifyOptions": ("genbab.verifier.options", "VerifyOptions"),
    "VerifierError": ("genbab.verifier.errors", "VerifierError"),
    "Property": ("genbab.vnnlib.property", "Property"),
    "parse_vnnlib": ("genbab.vnnlib.parser", "parse_vnnlib"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'genbab' has no attribute {name!r}")
