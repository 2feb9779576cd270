"""One torch thread for a block of generation work (training, exporting, attacking).

Model building is many small kernels: on a shared 2-core machine one thread is much faster
than several contending ones, and the results do not depend on how many cores are free."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
