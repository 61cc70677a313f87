"""Token patterns matched over a whole batch of docs in array operations, in bounded work.

spaCy's Matcher tests every pattern at every token in Python-visible steps, and returns
every match of `+` / `*`: on a run of r tokens that all pass the test that is r(r+1)/2
matches, and featurizing then touches every token of every match, r^3/6 in all (600
title-case tokens: 7 s and 1.7 GB; 1,000: out of memory). Wide ranges are no better:
`{1,10}` expands to nine optional steps that the Matcher explores one by one (10,000
tokens: 6.6 s). Here instead:

- each token test (the pattern token without its OP) is run once per distinct word with
  spaCy's own Matcher, so its semantics are spaCy's; the answers for a word are kept
  across docs (a sorted hash table), so a batch only tests the words never seen before;
  tests on attributes that can differ between tokens of one word (NORM, POS, ...) run
  on the doc itself;
- the operators are simulated as a small NFA over all start positions of the batch at
  once (numpy), dropping dead starts after each token, so the work is
  O(tokens + live starts * length * steps) per batch, not per doc; the bounded patterns
  run stacked as one NFA (pattern_nfa.py), so the number of numpy calls does not grow
  with the number of rules;
- a bounded pattern (`every_match`) gives every match, exactly as spaCy's Matcher does
  (distinct (key, start, end)); an unbounded one gives the leftmost-longest
  non-overlapping matches of at most `max_length` tokens (as a regex engine does), so a
  rule covers each token at most once.

Lexeme attributes are read once per word: a program that changes a lexeme's flags (e.g.
IS_STOP) after matching should build a new matcher.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from spacy.attrs import LOWER, ORTH
from spacy.matcher import Matcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from .hash_lookup import SortedHashes
from .pattern_nfa import StackedNFA
from ..rules.pattern_bounds import OP_RANGE, DEFAULT_MAX_MATCH_LENGTH, MAX_OPTIONAL_STEPS, unbounded_reason

# Hits of one rule in one doc beyond this are dropped (the first ones in doc order stay).
DEFAULT_MAX_MATCHES_PER_RULE = 10_000
# Distinct words whose test results are kept; past it the table starts afresh (bounded memory
# on an endless stream of new words).
MAX_CACHED_WORDS = 1 << 20

ONE, OPTIONAL, STAR, NOT = 0, 1, 2, 3  # step kinds: one token, zero or one, any number, one not
# Attributes of the lexeme (the same for every token of a word): their tests are run once
# per distinct word. NORM, POS, LEMMA, SENT_START, SPACY ... can differ between tokens.
_LEXEME_ATTRS = frozenset({
    "ORTH", "TEXT", "LOWER", "SHAPE", "PREFIX", "SUFFIX", "LENGTH", "IS_ALPHA", "IS_ASCII", "IS_DIGIT",
    "IS_LOWER", "IS_UPPER", "IS_TITLE", "IS_PUNCT", "IS_SPACE", "IS_STOP", "IS_BRACKET", "IS_QUOTE",
    "IS_LEFT_PUNCT", "IS_RIGHT_PUNCT", "IS_CURRENCY", "LIKE_NUM", "LIKE_URL", "LIKE_EMAIL", "IS_OOV",
})


class DocBatch(NamedTuple):
    """The tokens of a batch of docs, flat (N = all tokens)."""

    docs: Sequence[Doc]
    orths: np.ndarray     # uint64 (N,) ORTH hash of each token
    lowers: np.ndarray    # uint64 (N,) LOWER hash of each token
    offsets: np.ndarray   # int64 (B,) first flat row of each doc
    lengths: np.ndarray   # int64 (B,)
    left: np.ndarray      # int64 (N,) tokens from this one to the end of its doc (>= 1)


def doc_batch(docs: Sequence[Doc]) -> DocBatch:
    """One `to_array` per doc, then everything is flat."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    offsets = np.cumsum(lengths) - lengths
    parts = [d.to_array([ORTH, LOWER]) for d in docs if len(d)]
    cols = np.concatenate(parts).astype(np.uint64, copy=False) if parts else np.zeros((0, 2), np.uint64)
    ends = np.repeat(offsets + lengths, lengths)
    return DocBatch(docs, np.ascontiguousarray(cols[:, 0]), np.ascontiguousarray(cols[:, 1]), offsets, lengths,
                    ends - np.arange(len(cols), dtype=np.int64))


class BoundedPatterns:
    """Token patterns over batches of docs: every match of a bounded pattern, the
    leftmost-longest non-overlapping matches (at most `max_length` tokens) of the others.

    vocab (Vocab): the pipeline's vocab.
    max_length (int): longest match of an unbounded pattern, in tokens; a longer run is
        split into several matches.
    """

    def __init__(self, vocab: Vocab, *, max_length: int = DEFAULT_MAX_MATCH_LENGTH) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        self.vocab = vocab
        self.max_length = max_length
        self._lexeme_tests = Matcher(vocab)   # run on a doc of the words not seen before
        self._token_tests = Matcher(vocab)    # run on the docs themselves
        self._spec_index: Dict[str, int] = {}
        self._lexeme_specs: List[int] = []
        self._token_specs: List[int] = []
        self._patterns: List[Tuple[int, np.ndarray, np.ndarray]] = []  # key, step kinds, step specs
        self._every: List[bool] = []   # bounded pattern: every match (spaCy's semantics)
        self._steps_max: List[int] = []  # tokens the NFA runs for
        self._stacked: Optional[StackedNFA] = None  # the every_match patterns as one NFA
        self._known = np.zeros(0, dtype=np.uint64)     # sorted ORTH hashes already tested
        self._known_rows = np.zeros((0, 0), dtype=np.bool_)  # (n_known, n_lexeme_specs)
        self._known_index: Optional[SortedHashes] = None  # of _known (rebuilt when it changes)

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, key: int, pattern: Sequence[Dict[str, Any]], *, every_match: bool = False) -> None:
        """Add one token pattern (spaCy's format) under match key `key`. every_match: give
        every match, as spaCy's Matcher does (only for patterns `unbounded_reason` passes)."""
        if every_match and unbounded_reason(list(pattern)) is not None:
            raise ValueError(f"every_match needs a bounded pattern: {unbounded_reason(list(pattern))}")
        kinds: List[int] = []
        specs: List[int] = []
        cap = (1 << 30) if every_match else self.max_length + 1  # more steps can never fit
        for spec in pattern:
            test = {k: v for k, v in spec.items() if k.upper() != "OP"}
            index = self._spec(test)
            for kind in _steps(spec.get("OP"), cap):
                kinds.append(kind)
                specs.append(index)
        longest = sum(k != STAR for k in kinds)
        if not every_match and sum(k in (ONE, NOT) for k in kinds) > self.max_length:
            return  # its shortest match is longer than any match may be
        self._patterns.append((key, np.asarray(kinds, dtype=np.int8), np.asarray(specs, dtype=np.int64)))
        self._every.append(every_match)
        self._stacked = None  # rebuilt when next needed
        self._steps_max.append(longest if every_match else self.max_length)

    def _spec(self, test: Dict[str, Any]) -> int:
        name = json.dumps(test, sort_keys=True, default=str)
        index = self._spec_index.get(name)
        if index is None:
            index = self._spec_index[name] = len(self._spec_index)
            lexical = all(k.upper() in _LEXEME_ATTRS for k in test)
            (self._lexeme_tests if lexical else self._token_tests).add(str(index), [[test]])
            (self._lexeme_specs if lexical else self._token_specs).append(index)
            if lexical:  # the kept answers lack this test: start afresh
                self._known = np.zeros(0, dtype=np.uint64)
                self._known_rows = np.zeros((0, len(self._lexeme_specs)), dtype=np.bool_)
        return index

    def __call__(self, doc: Doc) -> List[Tuple[int, int, int]]:
        """RETURNS (List[Tuple[int, int, int]]): (key, start, end) of the matches in `doc`."""
        _, keys, starts, ends = self.match(doc_batch([doc]))
        return list(zip(keys.tolist(), starts.tolist(), ends.tolist()))

    def match(self, batch: DocBatch) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Matches in a batch: RETURNS (doc index, key, start, end) int64/uint64 arrays,
        starts and ends within the doc; bounded patterns' matches distinct per key."""
        n = len(batch.orths)
        if not self._patterns or not n:
            z = np.zeros(0, dtype=np.int64)
            return z, z.astype(np.uint64), z, z
        passes = self.batch_tests(batch)
        key_l, start_l, len_l, every_l = [], [], [], []
        if self._stacked is None:
            self._stacked = StackedNFA([p for p, every in zip(self._patterns, self._every) if every])
        if self._stacked.n_rows:  # every bounded pattern at once
            keys, starts, lengths = self._stacked.run(passes, batch.left)
            key_l.append(keys)
            start_l.append(starts)
            len_l.append(lengths)
            every_l.append(np.ones(len(keys), dtype=np.bool_))
        for (key, kinds, specs), every, steps in zip(self._patterns, self._every, self._steps_max):
            if not every:
                longest = np.zeros(n, dtype=np.int64)
                for length, starts in self._accept_starts(passes, kinds, specs, batch.left, steps):
                    longest[starts] = length
                # matches never cross a doc's end, so one scan over the batch is per doc
                spans = np.asarray(leftmost_longest(longest), dtype=np.int64).reshape(-1, 2)
                start_l.append(spans[:, 0])
                len_l.append(spans[:, 1] - spans[:, 0])
                key_l.append(np.full(len(spans), key, dtype=np.uint64))
                every_l.append(np.zeros(len(spans), dtype=np.bool_))
        if not start_l:
            z = np.zeros(0, dtype=np.int64)
            return z, z.astype(np.uint64), z, z
        keys, starts = np.concatenate(key_l), np.concatenate(start_l)
        lengths, every_a = np.concatenate(len_l), np.concatenate(every_l)
        # spaCy's Matcher returns a (key, start, end) once though several patterns of the key
        # (or several paths through one: `?` `?`) reach it
        order = np.lexsort((lengths, starts, keys, ~every_a))
        keys, starts, lengths, every_a = keys[order], starts[order], lengths[order], every_a[order]
        same = np.zeros(len(keys), dtype=np.bool_)
        same[1:] = every_a[1:] & every_a[:-1] & (keys[1:] == keys[:-1]) & (starts[1:] == starts[:-1]) & (
            lengths[1:] == lengths[:-1])
        keys, starts, lengths = keys[~same], starts[~same], lengths[~same]
        doc = np.searchsorted(batch.offsets, starts, side="right") - 1
        # an empty doc shares its offset with the next one: searchsorted(right) skips it
        local = starts - batch.offsets[doc]
        return doc, keys, local, local + lengths

    def token_tests(self, doc: Doc) -> np.ndarray:
        """(n_specs, len(doc) + max_length) bool: token j passes test i (False past the end)."""
        passes = self.batch_tests(doc_batch([doc]))
        return np.concatenate([passes, np.zeros((len(passes), self.max_length), dtype=np.bool_)], axis=1)

    def batch_tests(self, batch: DocBatch) -> np.ndarray:
        """(n_specs, N) bool: flat token j of the batch passes test i."""
        n = len(batch.orths)
        passes = np.zeros((len(self._spec_index), n), dtype=np.bool_)
        if self._lexeme_specs and n:
            passes[self._lexeme_specs] = self._orth_rows(batch.orths).T
        if self._token_specs:
            strings = self.vocab.strings
            for doc, offset in zip(batch.docs, batch.offsets.tolist()):
                for k, s, _ in self._token_tests(doc) if len(doc) else ():
                    passes[int(strings[k]), offset + s] = True
        return passes

    def _orth_rows(self, orths: np.ndarray) -> np.ndarray:
        """(len(orths), n_lexeme_specs) test results of ORTH hashes, by a hash lookup in the
        words seen before; the words not seen before are tested now (one Matcher call on
        a doc of them) and kept."""
        if self._known_index is None or self._known_index.keys is not self._known:
            self._known_index = SortedHashes(self._known)
        pos = self._known_index.find(orths)
        missing = pos < 0
        if missing.any():
            new = np.unique(orths[missing])
            known = self._known
            if len(known) + len(new) > MAX_CACHED_WORDS:  # start afresh with this batch's words
                known, self._known_rows = np.zeros(0, dtype=np.uint64), self._known_rows[:0]
                new = np.unique(orths)
            strings = self.vocab.strings
            vocab_doc = Doc(self.vocab, words=[strings[int(h)] for h in new.tolist()])
            col = {spec: j for j, spec in enumerate(self._lexeme_specs)}
            rows = np.zeros((len(new), len(self._lexeme_specs)), dtype=np.bool_)
            for k, s, _ in self._lexeme_tests(vocab_doc):
                rows[s, col[int(strings[k])]] = True
            at = np.searchsorted(known, new)
            self._known = np.insert(known, at, new)
            self._known_rows = np.insert(self._known_rows, at, rows, axis=0)
            self._known_index = SortedHashes(self._known)
            pos = self._known_index.find(orths)
        return self._known_rows[pos]

    def accepting(
        self, passes: np.ndarray, kinds: np.ndarray, specs: np.ndarray, n: int
    ) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield (length, bool array over the n starts of one doc): the starts with a match
        of that length, for length 1..max_length. `passes`: (n_specs, >= n) test results."""
        left = n - np.arange(n, dtype=np.int64)
        for length, starts in self._accept_starts(passes, kinds, specs, left, self.max_length):
            accept = np.zeros(n, dtype=np.bool_)
            accept[starts] = True
            yield length, accept

    @staticmethod
    def _accept_starts(
        passes: np.ndarray, kinds: np.ndarray, specs: np.ndarray, left: np.ndarray, max_steps: int
    ) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield (length, start positions with a match of that length), length 1..max_steps.
        The NFA runs for all starts at once: row j of the state says "steps before j are
        done" for each live start; a start is dropped once no step is live for it."""
        n_steps = len(kinds)
        kind_l, spec_l = kinds.tolist(), specs.tolist()
        skippable = [k in (OPTIONAL, STAR) for k in kind_l]
        width = passes.shape[1]
        pos = np.arange(len(left), dtype=np.int64)
        state = np.zeros((n_steps + 1, len(pos)), dtype=np.bool_)
        state[0] = True
        _close(state, skippable)
        for k in range(max_steps):
            inside = left > k  # token start + k is in the start's doc
            at = np.minimum(pos + k, width - 1)
            nxt = np.zeros_like(state)
            for j, (kind, spec) in enumerate(zip(kind_l, spec_l)):
                row = state[j]
                if not row.any():
                    continue
                if kind == NOT:  # one token, inside the doc, that fails the test
                    nxt[j + 1] |= row & ~passes[spec, at] & inside
                else:
                    step = row & passes[spec, at] & inside
                    nxt[j + 1 if kind != STAR else j] |= step
            _close(nxt, skippable)
            if nxt[n_steps].any():
                yield k + 1, pos[nxt[n_steps]]
            live = nxt[:n_steps].any(axis=0)
            if not live.any():
                return
            if 2 * int(live.sum()) < live.size:  # drop the dead starts
                nxt, pos, left = nxt[:, live], pos[live], left[live]
            state = nxt


def _close(state: np.ndarray, skippable: List[bool]) -> None:
    """Epsilon closure: a state before an optional step is also a state after it."""
    for j, skip in enumerate(skippable):
        if skip:
            state[j + 1] |= state[j]


def _steps(op: Any, cap: int) -> List[int]:
    """The NFA steps of one pattern token's OP (spaCy's meaning), ranges cut at `cap`."""
    if op is None or op == "1":
        return [ONE]
    fixed = {"?": [OPTIONAL], "*": [STAR], "+": [ONE, STAR], "!": [NOT]}
    if op in fixed:
        return fixed[op]
    m = OP_RANGE.match(str(op))
    if m is None:
        raise ValueError(f"unknown OP {op!r}")
    low_s, comma, high_s = m.groups()
    low = min(int(low_s or 0), cap)
    if not comma:
        return [ONE] * low
    if not high_s:
        return [ONE] * low + [STAR]
    high = min(int(high_s), cap)
    return [ONE] * low + [OPTIONAL] * max(high - low, 0)


def leftmost_longest(longest: np.ndarray) -> List[Tuple[int, int]]:
    """Non-overlapping (start, end): from the left, the longest match at each start that
    begins after the previous one ended."""
    out: List[Tuple[int, int]] = []
    end = 0
    starts = np.flatnonzero(longest)
    for s, length in zip(starts.tolist(), longest[starts].tolist()):
        if s >= end:
            end = s + length
            out.append((s, end))
    return out


def cap_per_key(keys: np.ndarray, starts: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the hits to keep: per key, the first `limit` in doc order (in input
    order where starts tie). RETURNS all indices if no key has more."""
    if len(keys) <= limit:
        return np.arange(len(keys))
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if counts.max() <= limit:
        return np.arange(len(keys))
    order = np.lexsort((np.arange(len(keys)), starts, inverse))
    group = inverse[order]
    first = np.searchsorted(group, group, side="left")
    rank = np.arange(len(order)) - first
    return np.sort(order[rank < limit])


__all__ = [
    "BoundedPatterns", "DocBatch", "DEFAULT_MAX_MATCH_LENGTH", "DEFAULT_MAX_MATCHES_PER_RULE", "MAX_OPTIONAL_STEPS",
    "cap_per_key", "doc_batch", "leftmost_longest", "unbounded_reason",
]