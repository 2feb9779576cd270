"""How many domains fit in memory: batch sizes for bounding, capacity of the pool, and
recognising out-of-memory errors so that the BaB loops back off instead of crashing.

Why estimates and not measurements: bounding a batch allocates most of its memory inside one
backward pass, so the only safe way to learn its peak is to try; we start from an estimate
that errs low (per domain: every perturbed tensor's intervals, plus ``rows`` coefficient
copies of the widest layer, as CROWN keeps them alive) and let the loops halve the batch on
an out-of-memory error (``is_out_of_memory``).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Callable

import torch

from genbab.branching.domain import Domains

from genbab.verifier.graph import Graph

logger = logging.getLogger(__name__)

# the share of the free memory that one batch may use: bounds, autograd graphs of alpha/beta
# and the allocator's slack all come on top of the estimate
_BATCH_SHARE = 0.25
# the share of the memory budget that the pool of waiting domains may hold
_POOL_SHARE = 0.5
_BYTES_PER_GB = 1024 ** 3


def parse_memory(text: str) -> float:
    """'8', '8G', '8GB', '512M', '1.5g' -> gigabytes (float).  Raises ValueError."""
    value = text.strip().upper().removesuffix("B")
    scale = {"K": 1 / 1024 ** 2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}.get(value[-1:], None)
    message = f"memory must be a positive size such as 8G or 512M, got {text!r}"
    try:
        number = float(value[:-1] if scale is not None else value)
    except ValueError:
        raise ValueError(message) from None
    gigabytes = number * (scale if scale is not None else 1.0)
    if not math.isfinite(gigabytes) or gigabytes <= 0:
        raise ValueError(message)
    return gigabytes


def available_bytes(device: str | torch.device = "cpu") -> int:
    """Memory the process could still allocate on ``device`` (free RAM, or free GPU memory)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * _BYTES_PER_GB   # unknown platform: assume a small machine


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def budget_bytes(device: str | torch.device = "cpu", max_memory_gb: float | None = None) -> int:
    """What BaB may use from now on: the free memory, capped by ``--max-memory`` (which counts
    the whole process, so what the process already holds is taken off)."""
    budget = available_bytes(device)
    if max_memory_gb is not None:
        held = resident_bytes() if torch.device(device).type == "cpu" else (
            torch.cuda.memory_allocated(device))
        budget = min(budget, max(0, int(max_memory_gb * _BYTES_PER_GB) - held))
    return budget


def _perturbed_sizes(graph: Graph) -> list[int]:
    names = [graph.input_name] + [out for node in graph.nodes for out in node.outputs]
    return [math.prod(graph.shapes[n]) for n in names if n in graph.shapes]


def domain_bytes(graph: Graph, rows: int, element_size: int = 4) -> int:
    """Estimated peak bytes for bounding ONE domain with ``rows`` spec rows."""
    sizes = _perturbed_sizes(graph)
    total, widest = sum(sizes), max(sizes, default=1)
    return element_size * (4 * total + 3 * max(rows, 1) * widest)


def stored_domain_bytes(graph: Graph, element_size: int = 4) -> int:
    """Bytes a waiting domain holds in the pool (lower and upper bound of every tensor)."""
    return element_size * 2 * sum(_perturbed_sizes(graph))


def batch_size(requested: int, per_domain: int, budget: int) -> int:
    """``requested`` domains per batch, fewer if the estimate says they will not fit (>= 1)."""
    fits = int(_BATCH_SHARE * budget) // max(per_domain, 1)
    return max(1, min(requested, fits))


def pool_capacity(requested: int, per_domain: int, budget: int) -> int:
    """How many waiting domains the pool may hold before BaB gives up with ``unknown``."""
    fits = int(_POOL_SHARE * budget) // max(per_domain, 1)
    return max(1, min(requested, fits))


def is_out_of_memory(err: BaseException) -> bool:
    """True for the errors torch raises when an allocation fails (CPU or GPU)."""
    if isinstance(err, MemoryError):
        return True
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text
                                              or "not enough memory" in text)


def bound_in_chunks(domains: Domains, chunk: int,
                    bound: Callable[[Domains], Domains]) -> tuple[Domains, int]:
    """``bound`` on ``domains`` in calls of at most ``chunk`` domains; on out-of-memory the
    chunk is halved and the failed part retried.  Returns the bounded domains and the chunk
    size to use from now on (so a batch size that suits a small model cannot crash a large
    one, and the search does not run into the same error every round)."""
    parts, start = [], 0
    while start < len(domains):
        size = min(chunk, len(domains) - start)
        part = domains if size == len(domains) else domains.select(
            torch.arange(start, start + size, device=domains.lower.device))
        try:
            parts.append(bound(part))
        except (RuntimeError, MemoryError) as error:
            if not is_out_of_memory(error) or size <= 1:
                raise
            chunk = max(1, size // 2)
            logger.info("out of memory bounding %d domains: %d per call from now on", size, chunk)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start += size
    return (parts[0] if len(parts) == 1 else Domains.cat(parts)), chunk
