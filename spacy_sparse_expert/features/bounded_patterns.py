"""Token patterns whose spaCy Matcher cost is unbounded, matched in bounded work.

spaCy's Matcher returns every match of `+` / `*`: on a run of r tokens that all pass the
test that is r(r+1)/2 matches, and featurizing then touches every token of every match,
r^3/6 in all (600 title-case tokens: 7 s and 1.7 GB; 1,000: out of memory). Wide ranges
are no better: `{1,10}` expands to nine optional steps that the Matcher explores one by
one (10,000 tokens: 6.6 s). Such patterns are matched here instead:

- each token test (the pattern token without its OP) is run once per distinct word with
  spaCy's own Matcher, so its semantics are spaCy's, and then broadcast to the tokens;
- the operators are simulated as a small NFA over all start positions at once (numpy),
  for at most `max_length` tokens, so the work is O(tokens * max_length * steps);
- of the matches, the leftmost-longest non-overlapping ones are kept (as a regex engine
  does), so a rule covers each token at most once.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Sequence, Set, Tuple

import numpy as np
from spacy.attrs import ORTH
from spacy.matcher import Matcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..rules.pattern_bounds import OP_RANGE, DEFAULT_MAX_MATCH_LENGTH, MAX_OPTIONAL_STEPS, unbounded_reason

# Hits of one rule in one doc beyond this are dropped (the first ones in doc order stay).
DEFAULT_MAX_MATCHES_PER_RULE = 10_000

ONE, OPTIONAL, STAR, NOT = 0, 1, 2, 3  # step kinds: one token, zero or one, any number, one not
# Attributes of the lexeme (the same for every token of a word): their tests are run once
# per distinct word. NORM, POS, LEMMA, SENT_START, SPACY ... can differ between tokens.
_LEXEME_ATTRS = frozenset({
    "ORTH", "TEXT", "LOWER", "SHAPE", "PREFIX", "SUFFIX", "LENGTH", "IS_ALPHA", "IS_ASCII", "IS_DIGIT",
    "IS_LOWER", "IS_UPPER", "IS_TITLE", "IS_PUNCT", "IS_SPACE", "IS_STOP", "IS_BRACKET", "IS_QUOTE",
    "IS_LEFT_PUNCT", "IS_RIGHT_PUNCT", "IS_CURRENCY", "LIKE_NUM", "LIKE_URL", "LIKE_EMAIL", "IS_OOV",
})


class BoundedPatterns:
    """Leftmost-longest, non-overlapping matches of token patterns, at most `max_length`
    tokens each.

    vocab (Vocab): the pipeline's vocab.
    max_length (int): longest match in tokens; a longer run is split into several matches.
    """

    def __init__(self, vocab: Vocab, *, max_length: int = DEFAULT_MAX_MATCH_LENGTH) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        self.vocab = vocab
        self.max_length = max_length
        self._lexeme_tests = Matcher(vocab)   # run on a doc of the distinct words
        self._token_tests = Matcher(vocab)    # run on the doc itself
        self._spec_index: Dict[str, int] = {}
        self._lexeme_specs: List[int] = []
        self._token_specs: List[int] = []
        self._patterns: List[Tuple[int, np.ndarray, np.ndarray]] = []  # key, step kinds, step specs

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, key: int, pattern: Sequence[Dict[str, Any]]) -> None:
        """Add one token pattern (spaCy's format) under match key `key`."""
        kinds: List[int] = []
        specs: List[int] = []
        cap = self.max_length + 1  # more steps than that can never fit in a match
        for spec in pattern:
            test = {k: v for k, v in spec.items() if k.upper() != "OP"}
            index = self._spec(test)
            for kind in _steps(spec.get("OP"), cap):
                kinds.append(kind)
                specs.append(index)
        if sum(k in (ONE, NOT) for k in kinds) > self.max_length:
            return  # its shortest match is longer than any match may be
        self._patterns.append((key, np.asarray(kinds, dtype=np.int8), np.asarray(specs, dtype=np.int64)))

    def _spec(self, test: Dict[str, Any]) -> int:
        name = json.dumps(test, sort_keys=True, default=str)
        index = self._spec_index.get(name)
        if index is None:
            index = self._spec_index[name] = len(self._spec_index)
            lexical = all(k.upper() in _LEXEME_ATTRS for k in test)
            (self._lexeme_tests if lexical else self._token_tests).add(str(index), [[test]])
            (self._lexeme_specs if lexical else self._token_specs).append(index)
        return index

    def __call__(self, doc: Doc) -> List[Tuple[int, int, int]]:
        """RETURNS (List[Tuple[int, int, int]]): (key, start, end) of the matches."""
        if not self._patterns or not len(doc):
            return []
        passes = self.token_tests(doc)
        out: List[Tuple[int, int, int]] = []
        for key, kinds, specs in self._patterns:
            longest = self._longest(passes, kinds, specs, len(doc))
            out.extend((key, s, e) for s, e in leftmost_longest(longest))
        return out

    def token_tests(self, doc: Doc) -> np.ndarray:
        """(n_specs, len(doc) + max_length) bool: token j passes test i (False past the end)."""
        n = len(doc)
        passes = np.zeros((len(self._spec_index), n + self.max_length), dtype=np.bool_)
        strings = self.vocab.strings
        if self._lexeme_specs:
            orths = doc.to_array([ORTH]).reshape(-1)
            words, inverse = np.unique(orths, return_inverse=True)
            vocab_doc = Doc(self.vocab, words=[strings[int(h)] for h in words.tolist()])
            by_word = np.zeros((len(self._spec_index), len(words)), dtype=np.bool_)
            for k, s, _ in self._lexeme_tests(vocab_doc):
                by_word[int(strings[k]), s] = True
            passes[:, :n] = by_word[:, inverse.reshape(-1)]
        if self._token_specs:
            for k, s, _ in self._token_tests(doc):
                passes[int(strings[k]), s] = True
        return passes

    def _longest(self, passes: np.ndarray, kinds: np.ndarray, specs: np.ndarray, n: int) -> np.ndarray:
        """Length of the longest match (<= max_length) at every start, 0 where none."""
        longest = np.zeros(n, dtype=np.int64)
        for length, accept in self.accepting(passes, kinds, specs, n):
            longest[accept] = length
        return longest

    def accepting(
        self, passes: np.ndarray, kinds: np.ndarray, specs: np.ndarray, n: int
    ) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield (length, bool array over starts): the starts with a match of that length,
        for length 1..max_length. The NFA runs for all starts at once: row j of the state
        says "steps before j are done" for each start."""
        n_steps = len(kinds)
        skippable = [k in (OPTIONAL, STAR) for k in kinds.tolist()]
        state = np.zeros((n_steps + 1, n), dtype=np.bool_)
        state[0] = True
        _close(state, skippable)
        inside = np.ones(n + self.max_length, dtype=np.bool_)
        inside[n:] = False
        for k in range(self.max_length):
            here = passes[:, k : k + n]  # test results of token start + k, for every start
            nxt = np.zeros_like(state)
            for j, (kind, spec) in enumerate(zip(kinds.tolist(), specs.tolist())):
                row = state[j]
                if kind == ONE or kind == OPTIONAL:
                    nxt[j + 1] |= row & here[spec]
                elif kind == STAR:
                    nxt[j] |= row & here[spec]
                else:  # NOT: one token, inside the doc, that fails the test
                    nxt[j + 1] |= row & ~here[spec] & inside[k : k + n]
            _close(nxt, skippable)
            state = nxt
            if state[n_steps].any():
                yield k + 1, state[n_steps].copy()
            if not state.any():
                return


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


class WholeDocMatcher:
    """Patterns run over the whole doc, like spaCy's Matcher: each pattern goes to spaCy's
    Matcher (every match) unless `unbounded_reason` names a reason, then to
    BoundedPatterns (leftmost-longest, non-overlapping, at most `max_length` tokens).

    vocab (Vocab): the pipeline's vocab.
    max_length (int): longest match of the bounded patterns, in tokens.
    """

    def __init__(self, vocab: Vocab, *, max_length: int = DEFAULT_MAX_MATCH_LENGTH) -> None:
        self.spacy_matcher = Matcher(vocab)
        self.bounded = BoundedPatterns(vocab, max_length=max_length)
        self._keys: Set[str] = set()

    def __len__(self) -> int:
        """Number of keys (rules), as for spaCy's Matcher."""
        return len(self._keys)

    def add(self, key: str, patterns: Sequence[Sequence[Dict[str, Any]]]) -> None:
        """Add the patterns of one key (spaCy's format)."""
        plain = [list(p) for p in patterns if unbounded_reason(list(p)) is None]
        if plain:
            self.spacy_matcher.add(key, plain)
        key_hash = self.spacy_matcher.vocab.strings.add(key)
        for pattern in patterns:
            if unbounded_reason(list(pattern)) is not None:
                self.bounded.add(key_hash, list(pattern))
        self._keys.add(key)

    def __call__(self, doc: Doc) -> List[Tuple[int, int, int]]:
        """RETURNS (List[Tuple[int, int, int]]): (key hash, start, end) of the matches."""
        out: List[Tuple[int, int, int]] = list(self.spacy_matcher(doc)) if len(self.spacy_matcher) else []
        out.extend(self.bounded(doc))
        return out


__all__ = [
    "BoundedPatterns", "WholeDocMatcher", "DEFAULT_MAX_MATCH_LENGTH", "DEFAULT_MAX_MATCHES_PER_RULE", "MAX_OPTIONAL_STEPS",
    "cap_per_key", "leftmost_longest", "unbounded_reason",
]
