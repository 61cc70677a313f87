"""A random stream of one's own for parameters and draws that exist only with
knowledge, so that the global torch stream follows the same sequence with knowledge
on or off."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def own_random_stream(seed: Optional[int] = None) -> Iterator[None]:
    """Draws made inside come from a copy of the CPU generator (seeded with ``seed``
    if given) and leave the global CPU stream where it was."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed % (2**63))
        yield
