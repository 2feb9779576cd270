"""Input boxes and per-node intervals, batched over domains.

Conventions used across ``bounds``: every interval is a pair ``(lower, upper)`` of tensors
``(batch, *shape)``; the batch axis holds independent domains.  Intervals are keyed by *tensor*
name (``node.output``), the names ``Graph.shapes`` uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genbab.verifier.graph import Graph

Pair = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box per domain: lower, upper ``(batch, *shape)``."""

    lower: Tensor
    upper: Tensor

    def __post_init__(self) -> None:
        if self.lower.shape != self.upper.shape:
            raise ValueError(f"box ends differ in shape: {tuple(self.lower.shape)} vs "
                             f"{tuple(self.upper.shape)}")

    @property
    def centre(self) -> Tensor:
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> Tensor:
        return (self.upper - self.lower) / 2

    def intersect(self, other: "Box") -> "Box":
        return Box(torch.maximum(self.lower, other.lower), torch.minimum(self.upper, other.upper))

    def is_empty(self) -> Tensor:
        """Per domain: some coordinate has lower > upper."""
        return (self.lower > self.upper).flatten(1).any(dim=1)


def input_box(graph: Graph, lower: Tensor, upper: Tensor) -> Box:
    """Validate and flatten an input box to ``(batch, input_size)``; accepts
    ``(batch, *input_shape)`` or ``(batch, input_size)``.  dtype/device are the caller's."""
    if lower.shape != upper.shape:
        raise ValueError(f"lower and upper differ in shape: {tuple(lower.shape)} vs {tuple(upper.shape)}")
    if lower.dim() < 1 or lower[0].numel() != graph.input_size:
        raise ValueError(f"input box must be (batch, {graph.input_size}) or (batch, "
                         f"*{graph.input_shape}), got {tuple(lower.shape)}")
    if not lower.is_floating_point():
        raise ValueError(f"input box must be floating point, got {lower.dtype}")
    return Box(lower.reshape(lower.shape[0], -1), upper.reshape(upper.shape[0], -1))
