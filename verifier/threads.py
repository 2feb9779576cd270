"""One torch thread for a block of offline work (training and exporting the demo models and the
zoo, building branching-point tables).

That work is many small kernels: on a shared 2-core machine one thread is much faster than
several contending ones (10-25x measured for the table build under load), and the results do
not depend on how many cores are free."""
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
