"""Memory sizing for BaB: parsing --max-memory, batch and pool limits, OOM recognition."""
import pytest
import torch

from genbab.branching import memory
from genbab.verifier.graph import Graph, Node


def _mlp(width: int) -> Graph:
    w = torch.randn(width, 4)
    nodes = (Node("fc", "Gemm", ("x", "w"), ("h",), {"transB": 1}),
             Node("act", "Relu", ("h",), ("y",), {}))
    return Graph("x", "y", nodes, {"w": w}, {"x": (4,), "w": (width, 4), "h": (width,),
                                             "y": (width,)})


@pytest.mark.parametrize("text, gb", [("8", 8.0), ("8G", 8.0), ("8gb", 8.0), ("512M", 0.5),
                                      ("1.5g", 1.5), ("2T", 2048.0)])
def test_parse_memory(text, gb):
    assert memory.parse_memory(text) == pytest.approx(gb)


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "nan", "lots"])
def test_parse_memory_rejects_nonsense(text):
    with pytest.raises(ValueError):
        memory.parse_memory(text)


def test_estimates_count_perturbed_tensors_not_weights():
    g = _mlp(100)
    # x, h, y: 4 + 100 + 100 elements; the 400-element weight matrix does not count
    assert memory.stored_domain_bytes(g) == 4 * 2 * 204
    assert memory.domain_bytes(g, rows=10) == 4 * (4 * 204 + 3 * 10 * 100)
    assert memory.domain_bytes(g, rows=10, element_size=8) == 2 * memory.domain_bytes(g, rows=10)


def test_batch_and_pool_shrink_to_the_budget_but_never_below_one():
    assert memory.batch_size(128, per_domain=1000, budget=10 ** 9) == 128
    assert memory.batch_size(128, per_domain=1000, budget=40_000) == 10
    assert memory.batch_size(128, per_domain=10 ** 9, budget=10) == 1
    assert memory.pool_capacity(500_000, per_domain=1000, budget=2_000_000) == 1000
    assert memory.pool_capacity(50, per_domain=1000, budget=2_000_000) == 50


def test_max_memory_caps_the_budget():
    free = memory.available_bytes("cpu")
    assert free > 0
    held = memory.resident_bytes()
    capped = memory.budget_bytes("cpu", max_memory_gb=(held + 10 * 2 ** 20) / 2 ** 30)
    assert 0 <= capped <= 11 * 2 ** 20
    assert memory.budget_bytes("cpu", max_memory_gb=held / 2 ** 30 / 2) == 0   # already over
    assert memory.budget_bytes("cpu") <= free * 1.5 + 2 ** 30


def test_out_of_memory_errors_are_recognised():
    assert memory.is_out_of_memory(MemoryError())
    assert memory.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert memory.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] "
                                                "DefaultCPUAllocator: can't allocate memory"))
    assert not memory.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))
