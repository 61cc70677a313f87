"""RuleMatcher: each rule kind fires where it should; anchored pattern windows find
exactly what a whole-doc Matcher finds; rule weights go into the bias matrices."""
from __future__ import annotations

import json

import numpy as np
import pytest
from spacy.matcher import Matcher

from spacy_sparse_expert.errors import SparseExpertError
from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.features.rule_matcher import RuleMatcher, csr_gather
from spacy_sparse_expert.rules.rules import RuleSet

EX = "http://example.org/"


def hits(nlp, kb, rules: str, text: str, labels=("politics", "sport")):
    feat = KnowledgeFeaturizer(nlp.vocab, kb, RuleSet.from_jsonl(rules), labels=list(labels), n_experts=2)
    doc = nlp(text)
    dk = feat(doc)
    return sorted((r, doc[s:e].text) for r, s, e in doc._.rule_hits), dk


def test_phrase_rules_lowercase_and_case_sensitive(nlp, kb) -> None:
    rules = ('{"id": "league", "phrase": ["Premier League", "cup final"]}\n'
             '{"id": "bt", "phrase": "BT", "case_sensitive": true}')
    got, _ = hits(nlp, kb, rules, "The premier league and the Cup Final. BT and bt.")
    assert got == [("bt", "BT"), ("league", "Cup Final"), ("league", "premier league")]


def test_pattern_rules(nlp, kb) -> None:
    rules = ('{"id": "score", "pattern": [{"IS_DIGIT": true}, {"ORTH": "-"}, {"IS_DIGIT": true}]}\n'
             '{"id": "money", "pattern": [[{"ORTH": "£"}, {"LIKE_NUM": true}, {"LOWER": {"IN": ["bn", "m"]}}]]}')
    got, _ = hits(nlp, kb, rules, "They won 2-1 and paid £3 bn, not 3 bn.")
    assert got == [("money", "£3 bn"), ("score", "2-1")]


def test_kb_type_rule_uses_the_type_closure(nlp, kb) -> None:
    rules = f'{{"id": "team", "kb_type": "{EX}SportsTeam", "labels": {{"sport": 1.0}}}}'
    # the club is a FootballClub, a subclass of SportsTeam; the district is not
    got, dk = hits(nlp, kb, rules, "Chelsea beat Arsenal at Stamford Bridge.")
    assert got == [("team", "Arsenal"), ("team", "Chelsea")]
    assert dk.label_bias.tolist() == [0.0, 2.0]
    got, dk = hits(nlp, kb, rules, "She lives in Chelsea.")
    assert got == [] and not dk.label_bias.any()


def test_kb_relation_rule(nlp, kb) -> None:
    rules = f'{{"id": "member", "kb_relation": "{EX}memberOf", "labels": {{"politics": 1.5}}, "weight": 2}}'
    got, dk = hits(nlp, kb, rules, "Gordon Brown and Tony Blair met the Labour Party in London.")
    assert got == [("member", "Gordon Brown"), ("member", "Tony Blair")]
    assert dk.label_bias.tolist() == [6.0, 0.0]


def test_kb_rules_without_kb_or_unknown_iri_never_fire(nlp, kb) -> None:
    rules = (f'{{"id": "team", "kb_type": "{EX}SportsTeam"}}\n'
             f'{{"id": "nope", "kb_type": "{EX}NoSuchType"}}\n'
             '{"id": "word", "phrase": "Chelsea"}')
    feat = KnowledgeFeaturizer(nlp.vocab, None, RuleSet.from_jsonl(rules), labels=["sport"], n_experts=2)
    doc = nlp("Chelsea beat Arsenal.")
    feat(doc)
    assert doc._.rule_hits == (("word", 0, 1),)
    got, _ = hits(nlp, kb, rules, "Chelsea beat Arsenal.")
    assert ("nope", "Arsenal") not in got and ("team", "Arsenal") in got


def test_weights_into_bias_matrices(nlp) -> None:
    rules = RuleSet.from_jsonl(
        '{"id": "a", "phrase": "x", "weight": 2, "labels": {"sport": 1.5, "other": 9}, "experts": {"1": 0.5}}\n'
        '{"id": "b", "phrase": "y", "experts": [0, 1]}')
    rm = RuleMatcher(nlp.vocab, rules, None, labels=["politics", "sport"], n_experts=2)
    np.testing.assert_allclose(rm.expert_weights, [[0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(rm.label_weights, [[0.0, 3.0], [0.0, 0.0]])  # unknown label ignored


def test_expert_index_out_of_range(nlp) -> None:
    rules = RuleSet.from_jsonl('{"id": "a", "phrase": "x", "experts": {"5": 1}}')
    with pytest.raises(SparseExpertError, match="E031"):
        RuleMatcher(nlp.vocab, rules, None, labels=["sport"], n_experts=4)


PATTERNS = [
    [{"IS_DIGIT": True}, {"ORTH": "-"}, {"IS_DIGIT": True}],
    [{"LOWER": {"IN": ["rose", "fell"]}}, {"LOWER": "by", "OP": "?"}, {"LIKE_NUM": True}, {"ORTH": "%"}],
    [{"TEXT": {"REGEX": r"^\d{1,3}(st|nd|rd|th)$"}}, {"LOWER": "minute"}],
    [{"TEXT": {"REGEX": r"(?i)^\d+(mbps|gb)$"}}],
    [{"LIKE_NUM": True}, {"IS_ALPHA": True, "OP": "+"}, {"ORTH": "."}],  # unbounded: whole doc
    [{"LOWER": "in"}, {"IS_ALPHA": True, "OP": "{1,2}"}, {"LIKE_NUM": True}],
]


def test_pattern_rules_equal_spacys_matcher(nlp) -> None:
    """The array NFA over a batch gives spaCy's matches, per doc, batched or not."""
    lines = "\n".join(json.dumps({"id": f"p{i}", "pattern": p}) for i, p in enumerate(PATTERNS))
    rm = RuleMatcher(nlp.vocab, RuleSet.from_jsonl(lines), None, labels=["x"], n_experts=2)
    assert len(rm.patterns) == len(PATTERNS)
    reference = Matcher(nlp.vocab)
    for i, p in enumerate(PATTERNS):
        reference.add(f"sse_rule::p{i}", [p])
    texts = [
        "Shares rose by 5% and fell 3 % after a 2-1 win in the 89th minute on 8Mbps and 2GB lines.",
        "2-1", "In May 2004 sales rose 10%. 12 - 3", "", "In the 1st minute 3 goals came.",
        "1 2-3-4 5 in one 6 rose 7 % 8mbps 9th minute 10 foo bar . in 11",
    ]
    docs = [nlp(text) for text in texts]
    batched = rm.token_hits_batch(docs)
    for doc, hits in zip(docs, batched):
        single = rm.token_hits(doc)
        got = sorted((rm.ids[r], s, e) for r, s, e in zip(hits.rules.tolist(), hits.starts.tolist(),
                                                          hits.ends.tolist()))
        assert got == sorted((rm.ids[r], s, e) for r, s, e in zip(single.rules.tolist(), single.starts.tolist(),
                                                                 single.ends.tolist()))
        want = sorted((nlp.vocab.strings[k].split("::")[1], s, e) for k, s, e in reference(doc))
        assert got == want, doc.text


def test_csr_gather() -> None:
    indptr = np.array([0, 2, 2, 5])
    indices = np.array([7, 8, 1, 2, 3])
    counts, values = csr_gather(indptr, indices, np.array([2, 0, 1, 2]))
    assert counts.tolist() == [3, 2, 0, 3]
    assert values.tolist() == [1, 2, 3, 7, 8, 1, 2, 3]
    counts, values = csr_gather(indptr, indices, np.array([], dtype=np.int64))
    assert counts.tolist() == [] and values.tolist() == []
