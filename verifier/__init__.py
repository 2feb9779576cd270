"""genbab's front ends: ``verify()``, the typed ``Result`` and the model loader.

Imports are lazy on purpose: ``bounds`` imports ``verifier.graph``, so importing ``api`` here
eagerly would close a cycle, and the CLI must start fast (torch is imported only when needed).
"""
from __future__ import annotations

_LAZY = {
    "verify": ("verifier.api", "verify"),
    "load_model": ("verifier.onnx_loader", "load_model"),
    "Result": ("verifier.result", "Result"),
    "Status": ("verifier.result", "Status"),
    "Counterexample": ("verifier.result", "Counterexample"),
    "VerifyOptions": ("verifier.options", "VerifyOptions"),
    "VerifierError": ("verifier.errors", "VerifierError"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
