"""SortedHashes answers exactly what a binary search answers."""
import numpy as np
import pytest
from spacy.strings import hash_string

from spacy_sparse_expert.features.hash_lookup import SortedHashes


def _searchsorted_find(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    if not len(keys):
        return np.full(len(values), -1, dtype=np.int64)
    pos = np.searchsorted(keys, values)
    pos[pos == len(keys)] = 0
    return np.where(keys[pos] == values, pos, -1)


@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_string_hashes_found_like_binary_search(n: int) -> None:
    keys = np.unique(np.array([hash_string(f"word{i}") for i in range(n)], dtype=np.uint64))
    absent = np.array([hash_string(f"other{i}") for i in range(300)], dtype=np.uint64)
    values = np.concatenate([keys[::3], absent, keys[::-5]])
    got = SortedHashes(keys).find(values)
    assert np.array_equal(got, _searchsorted_find(keys, values))
    assert (got[: len(keys[::3])] >= 0).all() and (got[len(keys[::3]) : len(keys[::3]) + 300] == -1).all()


def test_crowded_keys_fall_back_to_binary_search() -> None:
    # small integers all share the top bits: one bucket holds every key
    keys = np.arange(0, 2000, 2, dtype=np.uint64)
    values = np.arange(0, 2100, dtype=np.uint64)
    got = SortedHashes(keys).find(values)
    assert np.array_equal(got, _searchsorted_find(keys, values))
    assert np.array_equal(got >= 0, (values % 2 == 0) & (values < 2000))


def test_keys_sharing_buckets() -> None:
    # a few keys per bucket (top bits equal, low bits differ): the bucket is walked
    rng = np.random.default_rng(0)
    tops = rng.integers(0, 1 << 20, 300, dtype=np.uint64) << np.uint64(44)
    keys = np.unique(np.concatenate([tops + np.uint64(j) for j in range(4)]))
    values = np.concatenate([keys, keys + np.uint64(7)])
    assert np.array_equal(SortedHashes(keys).find(values), _searchsorted_find(keys, values))
