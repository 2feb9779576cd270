"""Attribute checks shared by the binders of the activation rules (``ValueError`` naming the
op and the problem, as ``OpRule.bind`` promises)."""
from __future__ import annotations

import math
from typing import Any, Mapping


def reject_unknown(op_type: str, attrs: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(attrs) - known
    if unknown:
        raise ValueError(f"{op_type}: unknown attributes {sorted(unknown)} "
                         f"(expected {sorted(known)})")


def finite_attribute(op_type: str, attrs: Mapping[str, Any], name: str, default: float) -> float:
    """``attrs[name]`` (or the ONNX default) as a float; ``ValueError`` if it is not finite."""
    value = float(attrs.get(name, default))
    if not math.isfinite(value):
        raise ValueError(f"{op_type}: attribute {name} must be finite, got {value}")
    return value
