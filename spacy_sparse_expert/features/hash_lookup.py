"""Positions of 64-bit hashes in a sorted table, without a binary search per query.

spaCy's string hashes and the alias sequence keys spread evenly over 64 bits, so a
table's top bits cut it into buckets of about one key each: a query reads its bucket's
start and compares a key or two. `np.searchsorted` pays ~20 dependent, cache-missing
steps per query instead (0.1-0.15 microseconds a token on a 30k-word table, the largest
single cost of linking a token). Tables whose keys crowd a few buckets fall back to the
binary search, so the answer never depends on how the keys spread.
"""
from __future__ import annotations

import numpy as np

# a bucket holding more keys than this means the keys are not evenly spread: binary search
_MAX_RUN = 16


class SortedHashes:
    """Look up uint64 values in `keys` (sorted ascending, distinct).

    keys (np.ndarray): uint64 (n,), sorted, no duplicates.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        n = int(keys.shape[0])
        self.bits = max(1, n.bit_length())  # 2**bits > n buckets: under one key a bucket
        self._shift = np.uint64(64 - self.bits)
        counts = np.bincount((keys >> self._shift).astype(np.intp), minlength=1 << self.bits)
        self._start = np.zeros((1 << self.bits) + 1, dtype=np.int64)
        np.cumsum(counts, out=self._start[1:])
        self._max_run = int(counts.max()) if n else 0
        # each bucket's first key (0 for an empty bucket: `_count` tells), so that the first
        # probe, which finds nearly every key there is, reads one array
        self._count = np.minimum(counts, 255).astype(np.uint8)  # the fast path has runs of <= _MAX_RUN
        self._first = np.zeros(1 << self.bits, dtype=np.uint64)
        filled = counts > 0
        self._first[filled] = keys[self._start[:-1][filled]] if n else 0

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def find(self, values: np.ndarray) -> np.ndarray:
        """int64 (len(values),): the position of each value in `keys`, -1 where absent."""
        out = np.full(values.shape[0], -1, dtype=np.int64)
        if not self.keys.shape[0] or not values.shape[0]:
            return out
        if self._max_run > _MAX_RUN:
            pos = np.searchsorted(self.keys, values)
            pos[pos == self.keys.shape[0]] = 0
            return np.where(self.keys[pos] == values, pos, -1)
        bucket = (values >> self._shift).astype(np.intp)
        count = self._count[bucket]
        hit = (self._first[bucket] == values) & (count > 0)
        lo = self._start[bucket]
        out = np.where(hit, lo, -1)
        todo = np.flatnonzero(~hit & (count > 1))  # the bucket's other keys
        if not todo.shape[0]:
            return out
        lo += 1
        left = count.astype(np.int64) - 1
        while todo.shape[0]:
            p = lo[todo]
            hit = self.keys[p] == values[todo]
            out[todo[hit]] = p[hit]
            lo[todo] += 1
            left[todo] -= 1
            todo = todo[~hit & (left[todo] > 0)]
        return out


__all__ = ["SortedHashes"]
