"""The bounded patterns of a rule set run as one stacked NFA over a batch of docs: the
matches are spaCy's Matcher's, doc by doc, for generated pattern sets (every bounded
operator, lexical and token-level tests, several patterns per key) on generated docs."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import spacy
from spacy.matcher import Matcher
from spacy.tokens import Doc

from spacy_sparse_expert.features.bounded_patterns import BoundedPatterns, doc_batch
from spacy_sparse_expert.rules.pattern_bounds import unbounded_reason

NLP = spacy.blank("en")
TESTS: List[Dict[str, Any]] = [
    {"IS_TITLE": True}, {"LOWER": "b"}, {"IS_ALPHA": True}, {"LOWER": {"IN": ["a", "d"]}}, {},
    {"LIKE_NUM": True}, {"TEXT": {"REGEX": "^[A-C]"}}, {"NORM": {"NOT_IN": ["b", "1"]}}, {"LENGTH": {"<=": 1}},
]
OPS = [None, None, "?", "!", "{2}", "{1,3}", "{,2}", "{0,1}"]


def _pattern(rng: random.Random) -> List[Dict[str, Any]]:
    out = []
    for _ in range(rng.randint(1, 4)):
        token = dict(rng.choice(TESTS))
        op = rng.choice(OPS)
        if op:
            token["OP"] = op
        out.append(token)
    return out


def test_stacked_patterns_equal_spacys_matcher_per_doc() -> None:
    rng = random.Random(7)
    words = ["A", "b", "C", "d", "1", "Bee", ".", "a"]
    compared = matched = 0
    for _ in range(60):
        engine = BoundedPatterns(NLP.vocab, max_length=8)
        reference = Matcher(NLP.vocab)
        for k in range(rng.randint(1, 6)):
            key = f"k{k}"
            patterns = []
            for _ in range(rng.randint(1, 2)):
                p = _pattern(rng)
                probe = Matcher(NLP.vocab)
                try:
                    probe.add("x", [p])  # spaCy refuses some (e.g. only "!" tokens)
                except ValueError:
                    continue
                if unbounded_reason(p) is None:
                    patterns.append(p)
            if patterns:
                reference.add(key, patterns)
                for p in patterns:
                    engine.add(NLP.vocab.strings.add(key), p, every_match=True)
        if not len(engine):
            continue
        docs = [Doc(NLP.vocab, words=[rng.choice(words) for _ in range(rng.randint(0, 10))]) for _ in range(5)]
        doc_idx, keys, starts, ends = engine.match(doc_batch(docs))
        for i, doc in enumerate(docs):
            got = sorted((int(k), s, e) for d, k, s, e in zip(doc_idx.tolist(), keys.tolist(), starts.tolist(),
                                                              ends.tolist()) if d == i)
            want = sorted((int(k), s, e) for k, s, e in reference(doc))
            assert got == want, ([t.text for t in doc], engine._patterns)
            compared += 1
            matched += len(want)
    assert compared > 200 and matched > 300, (compared, matched)
