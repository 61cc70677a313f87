"""Phrase rules as one hash index matched over a whole batch of docs in array operations.

spaCy's PhraseMatcher walks a trie token by token, one call per doc; here every phrase of
L tokens is one 64-bit key (its tokens' LOWER, or ORTH for case-sensitive rules, mixed in
order), the keys of each length are one sorted array, and a batch is matched by mixing
the same key for every window of L tokens that stays inside its doc and looking all of
them up at once. A hit is confirmed token by token against the stored phrase, so a key
collision can never report a false match. Like the PhraseMatcher it reports every match:
overlapping and nested ones, once per (rule, start, end).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from spacy.attrs import LOWER, ORTH
from spacy.tokens import Doc

_MIX = np.uint64(0x9E3779B97F4A7C15)


class _Lookup:
    """Membership of uint64 keys in a fixed sorted set: the keys' top bits index a bucket
    of the sorted keys, so a lookup is two gathers and a compare (a binary search over
    every token costs more than all the rest of phrase matching)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64)
        bits = max(int(np.ceil(np.log2(max(len(self.keys), 1)))) + 4, 8)
        self.shift = np.uint64(64 - bits)
        self.bucket = np.searchsorted(self.keys >> self.shift, np.arange((1 << bits) + 1, dtype=np.uint64))

    def __call__(self, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """RETURNS (positions in `values` found in the set, their index in the set)."""
        if not len(self.keys) or not len(values):
            z = np.zeros(0, dtype=np.int64)
            return z, z
        slot = (values >> self.shift).astype(np.int64)
        lo, hi = self.bucket[slot], self.bucket[slot + 1]
        pos = np.minimum(lo, len(self.keys) - 1)
        multi = np.flatnonzero(hi - lo > 1)  # a bucket holding several keys (rare)
        if len(multi):
            pos[multi] = np.minimum(np.searchsorted(self.keys, values[multi]), len(self.keys) - 1)
        found = np.flatnonzero(self.keys[pos] == values)
        return found, pos[found]


class _Table:
    """Phrases of one attribute and length: sorted keys, their tokens, rules per key (CSR)."""

    def __init__(self, phrases: Dict[Tuple[int, ...], List[int]]) -> None:
        tokens = np.array(sorted(phrases), dtype=np.uint64)
        keys = mix_windows(tokens.reshape(-1), len(tokens[0]))[:: len(tokens[0])] if len(tokens) else tokens
        order = np.argsort(keys, kind="stable")
        self.tokens = tokens[order]
        self.lookup = _Lookup(keys[order])
        rows = [sorted(set(phrases[tuple(t)])) for t in self.tokens.tolist()]
        self.indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        self.rows = np.array([x for r in rows for x in r], dtype=np.int64)


def mix_windows(values: np.ndarray, length: int) -> np.ndarray:
    """(N - length + 1,) uint64 key of every window of `length` consecutive values."""
    n = len(values) - length + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    key = values[:n].copy()
    for j in range(1, length):
        key = key * _MIX ^ values[j : j + n]
    return key


class PhraseIndex:
    """Phrase rules over batches of docs.

    make_doc (Callable[[str], Doc]): the tokenizer the phrases are split with (the
        pipeline's, so phrases split as the text will).
    """

    def __init__(self, make_doc: Callable[[str], Doc]) -> None:
        self.make_doc = make_doc
        self._phrases: Dict[Tuple[int, int], Dict[Tuple[int, ...], List[int]]] = {}  # (attr, L) -> tokens -> rows
        self._tables: Optional[Dict[Tuple[int, int], _Table]] = None
        self._firsts: Dict[int, _Lookup] = {}  # attr -> the phrases' first tokens

    def __len__(self) -> int:
        return sum(len(p) for p in self._phrases.values())

    def add(self, row: int, phrases: Sequence[str], *, case_sensitive: bool = False) -> None:
        """The phrases of rule `row` (an empty tokenization never matches, as in spaCy)."""
        attr = ORTH if case_sensitive else LOWER
        for text in phrases:
            doc = self.make_doc(text)
            if len(doc):
                tokens = tuple(doc.to_array(attr).reshape(-1).tolist())
                self._phrases.setdefault((attr, len(tokens)), {}).setdefault(tokens, []).append(row)
        self._tables = None  # rebuilt when next needed (adding many rules stays linear)

    def match(self, columns: Dict[int, np.ndarray], left: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Matches in a batch's flat tokens: RETURNS (rule row, start, end), flat positions.

        columns (Dict[int, np.ndarray]): attribute id (LOWER, ORTH) -> uint64 (N,) values.
        left (np.ndarray): int64 (N,) tokens from each one to the end of its doc.
        """
        rows_l: List[np.ndarray] = []
        start_l: List[np.ndarray] = []
        end_l: List[np.ndarray] = []
        if self._tables is None:
            self._tables = {k: _Table(v) for k, v in self._phrases.items()}
            firsts: Dict[int, set] = {}
            for (attr, _), table in self._tables.items():
                firsts.setdefault(attr, set()).update(table.tokens[:, 0].tolist())
            self._firsts = {attr: _Lookup(np.array(sorted(f), dtype=np.uint64)) for attr, f in firsts.items()}
        # starts whose token begins some phrase: every window key below is built there only
        candidates = {attr: first(columns[attr])[0] for attr, first in self._firsts.items()}
        for (attr, length), table in self._tables.items():
            values, starts = columns[attr], candidates[attr]
            starts = starts[left[starts] >= length]  # the window stays in its doc
            if not len(starts):
                continue
            keys = values[starts]
            for j in range(1, length):
                keys = keys * _MIX ^ values[starts + j]
            hit, pos = table.lookup(keys)
            hit = starts[hit]
            if not len(hit):
                continue
            # confirm token by token: a colliding key never makes a false match
            same = np.ones(len(hit), dtype=np.bool_)
            for j in range(length):
                same &= values[hit + j] == table.tokens[pos, j]
            hit, pos = hit[same], pos[same]
            begin = table.indptr[pos]
            counts = table.indptr[pos + 1] - begin
            offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            rows_l.append(table.rows[np.repeat(begin, counts) + offsets])
            hits = np.repeat(hit, counts)
            start_l.append(hits)
            end_l.append(hits + length)
        if not rows_l:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        return np.concatenate(rows_l), np.concatenate(start_l), np.concatenate(end_l)


__all__ = ["PhraseIndex", "mix_windows"]
