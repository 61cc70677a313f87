"""Array steps over segments (CSR rows, spans, runs of a sorted table) shared by linking,
disambiguation, rules and the knowledge features: plain numpy, no Python per element."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def segment_positions(begin: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """begin[i], begin[i] + 1, ..., begin[i] + counts[i] - 1 for every i, one segment
    after another (int64)."""
    total = int(counts.sum())
    return np.repeat(begin - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)


def segment_rows(indptr: np.ndarray, rows: np.ndarray, limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The positions of CSR rows `rows` (each cut to its first `limit`): RETURNS (the
    index into `rows` of each position, the positions), rows one after another."""
    begin = indptr[rows]
    counts = indptr[rows + 1] - begin
    if limit is not None:
        counts = np.minimum(counts, limit)
    return np.repeat(np.arange(len(rows), dtype=np.int64), counts), segment_positions(begin, counts)


def lookup_sorted(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query (`keys` sorted, distinct), else 0."""
    if not len(keys):
        return np.zeros(len(queries), dtype=values.dtype)
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[pos] == queries, values[pos], 0)


def in_sorted_rows(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Whether queries[i] is in CSR row rows[i] (each row's values sorted): one binary
    search per query, all queries stepped together."""
    lo, end = indptr[rows], indptr[rows + 1]
    if not len(values):
        return np.zeros(len(rows), dtype=bool)
    hi = end.copy()
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        right = active & (values[np.where(active, mid, 0)] < queries)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    found = lo < end
    found[found] = values[lo[found]] == queries[found]
    return found


def isin_sorted(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """np.isin against a sorted `table`, by binary search."""
    if not table.shape[0]:
        return np.zeros(values.shape[0], dtype=bool)
    pos = np.searchsorted(table, values)
    pos[pos == table.shape[0]] = 0
    return table[pos] == values


def rows_sorted(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` with each CSR row sorted (rows already sorted, as the KB's neighbour rows are, are returned as they are)."""
    values = np.asarray(values, dtype=np.int64)
    step = np.diff(values)
    row_start = np.zeros(len(values), dtype=bool)
    row_start[indptr[1:-1][indptr[1:-1] < len(values)]] = True
    if len(values) < 2 or not ((step < 0) & ~row_start[1:]).any():
        return values
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return values[np.lexsort((values, owner))]


__all__ = ["in_sorted_rows", "isin_sorted", "lookup_sorted", "rows_sorted", "segment_positions", "segment_rows"]
