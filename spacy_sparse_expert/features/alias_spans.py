"""Alias spans from token hashes: which stretches of a batch of docs spell a KB alias,
found with a few numpy calls per batch instead of a matcher walked token by token.

- `ensure_alias_index`: the KB's alias index (`kb/alias_index.py`) for this tokenizer,
  read from the KB folder, or built once (tokenizing every alias) and saved there.
- `AliasPatterns`: the aliases a linker matches, as tables of first-token hashes (which
  positions may start an alias), of first-two-token hashes (which lengths a window
  starting there may have) and a sorted table of polynomial hashes of the whole token
  sequences. A doc's windows are hashed from prefix sums, looked
  up by `np.searchsorted`, and every hit is checked token by token, so the result is
  exactly the set of (start, end, alias) a PhraseMatcher on LOWER finds.
- `longest_first`: spacy.util.filter_spans's choice (longest first, then earliest) over
  all docs at once: a span that overlaps no other is kept as it is; only the few runs of
  overlapping spans are resolved one by one.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

import numpy as np
from spacy import about
from spacy.attrs import LOWER
from spacy.strings import hash_string

from ..errors import Warnings
from ..kb.alias_index import AliasIndex, aliases_digest, build_alias_index, write_alias_index
from ..kb.folding import fold_accents
from .hash_lookup import SortedHashes

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase

# Odd multipliers of the window hash (odd, so invertible mod 2**64); the next one is tried
# in the unlikely case that two aliases of a KB share a hash under one of them.
_FILTER_BITS = 20
_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


def tokenizer_key(make_doc: Callable[[str], Any], lang: str) -> Optional[str]:
    """A key of what `make_doc` does: its own `alias_index_key` (linker.BlankTokenizer),
    else the spaCy version, the language and a digest of a Tokenizer's rules. None for
    another callable (its index is then built in memory and never saved: nothing would
    say when it went stale)."""
    own = getattr(make_doc, "alias_index_key", None)
    if isinstance(own, str):
        return own
    to_bytes = getattr(make_doc, "to_bytes", None)
    if to_bytes is None:
        return None
    digest = hashlib.sha256(to_bytes(exclude=["vocab"])).hexdigest()[:32]
    return f"spacy-{about.__version__}/{lang}/{digest}"


def ensure_alias_index(kb: "KnowledgeBase", make_doc: Callable[[str], Any], lang: str) -> AliasIndex:
    """The alias index of `kb` for tokenizer `make_doc`: the one loaded with the KB if its
    keys fit, else built now and kept on the KB (so `kb.to_disk` writes it); for a KB
    loaded from a folder also saved there, and W200 says so (once per loaded KB)."""
    key = tokenizer_key(make_doc, lang)
    digest = aliases_digest(kb.alias_surfaces)
    index = kb.alias_index
    if index is not None and key is not None and index.fits(key, digest):
        return index
    start = time.perf_counter()

    def tokens(surface: str) -> np.ndarray:
        # patterns are accent-folded like the text (see AliasLinker._token_attrs)
        return make_doc(fold_accents(surface)).to_array(LOWER).reshape(-1)

    index = build_alias_index(kb.alias_surfaces, tokens, hash_string, tokenizer=key or "(unkeyed)")
    if key is None:
        return index
    kb.alias_index = index
    if kb.path is None:  # a KB compiled in this process: nothing to save it with yet
        return index
    try:
        write_alias_index(kb.path, index)
        where = f"saved to {kb.path}, so later loads read it"
    except OSError as err:
        where = f"not saved ({err}); it is built again on every load"
    warnings.warn(Warnings.W200.format(path=kb.path, n=kb.n_aliases, seconds=time.perf_counter() - start,
                                       where=where), stacklevel=3)
    return index


def _powers(base: int, n: int) -> np.ndarray:
    """base**i mod 2**64 for i < n (uint64 products wrap, which is the modulus)."""
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


def _ragged(lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(row of each element, position within its row) for rows of `lengths`."""
    total = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(lengths.shape[0]), lengths)
    return rows, np.arange(total) - first[rows]


class AliasPatterns:
    """The token sequences a linker matches, each with the alias rows that spell it.

    index (AliasIndex): the KB's alias index.
    keep (np.ndarray): bool (n_aliases,), the aliases the linker may match.
    Pattern p has tokens tokens[indptr[p]:indptr[p + 1]] and alias rows
    rows[rows_indptr[p]:rows_indptr[p + 1]] (ascending).
    """

    def __init__(self, index: AliasIndex, keep: np.ndarray) -> None:
        a = index.arrays
        seq = a["alias_seq"].astype(np.int64)
        rows = np.flatnonzero(keep & (seq >= 0))
        rows = rows[np.argsort(seq[rows], kind="stable")]  # by sequence, rows ascending within
        sids, counts = np.unique(seq[rows], return_counts=True)
        self.rows = rows
        self.rows_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        seq_len = np.diff(a["seq_indptr"])
        self.lengths = seq_len[sids].astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        r, t = _ragged(self.lengths)
        self.tokens = a["seq_tokens"][a["seq_indptr"][sids][r] + t]
        self._max_len = int(self.lengths.max()) if len(sids) else 0
        # the tokens that may start a pattern; which of them are a pattern of one token
        first = self.tokens[self.indptr[:-1]]
        self.first_tokens, first_of = np.unique(first, return_inverse=True)
        self._single = np.zeros(self.first_tokens.shape[0], dtype=bool)
        self._single[first_of[self.lengths == 1]] = True
        self._pow = self._inv = np.ones(1, dtype=np.uint64)
        for base in _MULTIPLIERS:
            self._base = base
            keys = self._sequence_keys()
            # distinct when no two neighbours of the sorted keys are equal (one sort: numpy
            # 2's hash-based np.unique took ~0.4 s of every load for 476k aliases)
            order = np.argsort(keys)  # the keys are kept only when distinct: no ties to order
            if not np.any(keys[order][1:] == keys[order][:-1]):
                break
        else:  # pragma: no cover - four independent 64-bit collisions
            raise RuntimeError("alias hashes collide under every multiplier")
        self._key_order = order
        self.keys = keys[order]
        self._key_index = SortedHashes(self.keys)
        # A bitmap of the keys' top bits: most windows are no alias, and one gather from a
        # 1 MiB table rejects them far faster than a binary search over every key would.
        self._maybe = np.zeros(1 << _FILTER_BITS, dtype=bool)
        self._maybe[self.keys >> np.uint64(64 - _FILTER_BITS)] = True
        self._pairs_table()

    def _pairs_table(self) -> None:
        """The lengths of the patterns of two or more tokens, by the hash of their first two
        tokens (the window hash of length 2). With the shipped KB about half the tokens of
        the BBC test set start some alias ("the", "new", "world"), with four lengths each on
        average; a window of two or more tokens is hashed only where its first two tokens
        begin a pattern of that length."""
        longer = np.flatnonzero(self.lengths >= 2)
        at = self.indptr[:-1][longer]
        pair = self.tokens[at] + self.tokens[at + 1] * np.uint64(self._base)  # wraps mod 2**64
        length = self.lengths[longer]
        order = np.lexsort((length, pair))
        pair, length = pair[order], length[order]
        new = np.ones(pair.shape[0], dtype=bool)
        new[1:] = (pair[1:] != pair[:-1]) | (length[1:] != length[:-1])
        pair, length = pair[new], length[new]
        first = np.ones(pair.shape[0], dtype=bool)
        first[1:] = pair[1:] != pair[:-1]
        self._pair_index = SortedHashes(pair[first])
        # the distinct lengths of the pair at row i: pair_lengths[pair_indptr[i]:pair_indptr[i + 1]], ascending
        self._pair_indptr = np.append(np.flatnonzero(first), pair.shape[0]).astype(np.int64)
        self._pair_lengths = length.astype(np.int64)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def _grow(self, n: int) -> None:
        if self._pow.shape[0] < n:
            size = max(n, 2 * self._pow.shape[0], 1024)
            self._pow = _powers(self._base, size)
            self._inv = _powers(pow(self._base, -1, 1 << 64), size)

    def _sequence_keys(self) -> np.ndarray:
        """sum_t token_t * base**t (mod 2**64) of every pattern."""
        self._pow = self._inv = np.ones(1, dtype=np.uint64)
        self._grow(self._max_len + 1)
        if not len(self):
            return np.zeros(0, dtype=np.uint64)
        _, t = _ragged(self.lengths)
        return np.add.reduceat(self.tokens * self._pow[t], self.indptr[:-1])

    def first_rows(self, lowers: np.ndarray) -> np.ndarray:
        """int64 (n,): the row of each hash in `first_tokens`, -1 where no pattern starts
        with it."""
        if not self.first_tokens.shape[0]:
            return np.full(lowers.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(self.first_tokens, lowers)
        pos[pos == self.first_tokens.shape[0]] = 0
        return np.where(self.first_tokens[pos] == lowers, pos, -1)

    def find(self, lowers: np.ndarray, doc_end: np.ndarray,
             first_row: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (start, end, pattern) whose tokens equal lowers[start:end], never past the
        end of the doc a position belongs to.

        lowers (np.ndarray): uint64 (n,) LOWER hashes of a batch of docs, one after another.
        doc_end (np.ndarray): int64 (n,) the end of the doc holding each position.
        first_row (Optional[np.ndarray]): `first_rows(lowers)`, if the caller has it.
        RETURNS: int64 arrays starts, ends, pattern ids, by start, then end.
        """
        empty = np.zeros(0, dtype=np.int64)
        n = lowers.shape[0]
        if not n or not len(self):
            return empty, empty, empty
        first_row = self.first_rows(lowers) if first_row is None else first_row
        starts = np.flatnonzero(first_row >= 0)
        if not starts.size:
            return empty, empty, empty
        self._grow(n + 1)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(lowers * self._pow[:n], out=prefix[1:])
        # candidate windows: one token where a pattern is that token; two or more where
        # the first two tokens begin a pattern of that length (and it ends inside the doc)
        one = starts[self._single[first_row[starts]]]
        two = starts[starts + 2 <= doc_end[starts]]
        row = self._pair_index.find((prefix[two + 2] - prefix[two]) * self._inv[two])
        two, row = two[row >= 0], row[row >= 0]
        r, t = _ragged(self._pair_indptr[row + 1] - self._pair_indptr[row])
        s = np.concatenate([one, two[r]])
        length = np.concatenate([np.ones(one.shape[0], dtype=np.int64),
                                 self._pair_lengths[self._pair_indptr[row][r] + t]])
        inside = s + length <= doc_end[s]
        s, length = s[inside], length[inside]
        keys = (prefix[s + length] - prefix[s]) * self._inv[s]  # = sum_t lowers[s + t] * base**t
        maybe = self._maybe[keys >> np.uint64(64 - _FILTER_BITS)]
        s, length, keys = s[maybe], length[maybe], keys[maybe]
        k = self._key_index.find(keys)
        hit = k >= 0
        s, length, pat = s[hit], length[hit], self._key_order[k[hit]]
        # a hash is only a hint: keep the windows whose tokens are the pattern's
        ok = self.lengths[pat] == length
        s, length, pat = s[ok], length[ok], pat[ok]
        if s.size:
            r, t = _ragged(length)
            same = lowers[s[r] + t] == self.tokens[self.indptr[pat][r] + t]
            ok = np.logical_and.reduceat(same, np.cumsum(length) - length)
            s, length, pat = s[ok], length[ok], pat[ok]
        order = np.lexsort((length, s))  # by start, then length
        s, length, pat = s[order], length[order], pat[order]
        return s, s + length, pat


def longest_first(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which spans spacy.util.filter_spans keeps: longest first, then earliest, each kept
    unless its first or last token is taken. RETURNS bool (n,) in the order given.
    Spans of different docs must not overlap (positions of a batch, one doc after another)."""
    keep = np.zeros(starts.shape[0], dtype=bool)
    if not starts.size:
        return keep
    order = np.lexsort((ends, starts))
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new_run = np.ones(s.shape[0], dtype=bool)
    new_run[1:] = s[1:] >= reach[:-1]
    run = np.cumsum(new_run) - 1
    size = np.bincount(run)
    alone = size[run] == 1
    keep[order[alone]] = True
    # runs of overlapping spans: the greedy choice, run by run (a run's choice never
    # touches the tokens of another run)
    crowded = np.flatnonzero(~alone)
    if crowded.size:
        bounds = np.flatnonzero(np.diff(run[crowded])) + 1
        for part in np.split(crowded, bounds):
            taken: set = set()
            spans = sorted(((int(e[i] - s[i]), -int(s[i]), int(i)) for i in part), reverse=True)
            for length, neg_start, i in spans:
                first, last = -neg_start, -neg_start + length - 1
                if first not in taken and last not in taken:
                    keep[order[i]] = True
                    taken.update(range(first, last + 1))
    return keep


__all__ = ["AliasPatterns", "ensure_alias_index", "longest_first", "tokenizer_key"]
