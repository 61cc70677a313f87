"""KnowledgeFeaturizer -> DocKnowledge: shapes, dtypes, CSR validity, content, the
Doc/Span extensions, knowledge switched off, empty / whitespace / long docs."""
from __future__ import annotations

import importlib
import time

import numpy as np
import pytest
from spacy.tokens import Doc, Span

from spacy_sparse_expert.features import features as features_module
from spacy_sparse_expert.features.features import FLAG_NAMES, N_FLAGS, DocKnowledge, KnowledgeFeaturizer
from spacy_sparse_expert.rules.rules import RuleSet

EX = "http://example.org/"
LABELS = ["politics", "sport", "tech"]
RULES = "\n".join([
    '{"id": "league", "phrase": "Premier League", "labels": {"sport": 2.0}, "experts": {"1": 1.0}}',
    '{"id": "score", "pattern": [{"IS_DIGIT": true}, {"ORTH": "-"}, {"IS_DIGIT": true}], "weight": 0.5, '
    '"labels": {"sport": 1.0}, "experts": [0]}',
    f'{{"id": "team", "kb_type": "{EX}SportsTeam", "labels": {{"sport": 1.0}}, "experts": {{"2": 2.0}}}}',
    f'{{"id": "party", "kb_relation": "{EX}memberOf", "labels": {{"politics": 1.0}}}}',
])


@pytest.fixture(scope="module")
def feat(nlp, kb) -> KnowledgeFeaturizer:
    return KnowledgeFeaturizer(nlp.vocab, kb, RuleSet.from_jsonl(RULES), labels=LABELS, n_experts=3)


def check_valid(dk: DocKnowledge, feat: KnowledgeFeaturizer, n: int) -> None:
    assert isinstance(dk, DocKnowledge)
    assert dk.ids_indptr.dtype == np.int64 and dk.ids_indptr.shape == (n + 1,)
    assert dk.ids.dtype == np.int64 and dk.ids.shape == (int(dk.ids_indptr[-1]),)
    assert dk.ids_indptr[0] == 0 and (np.diff(dk.ids_indptr) >= 0).all()
    assert ((dk.ids >= 0) & (dk.ids < feat.n_ids)).all()
    for i in range(n):  # sorted and unique within each token
        row = dk.ids[dk.ids_indptr[i] : dk.ids_indptr[i + 1]]
        assert (np.diff(row) > 0).all()
    assert dk.dense.dtype == np.float32 and dk.dense.shape == (n, feat.n_dense)
    assert dk.expert_bias.dtype == np.float32 and dk.expert_bias.shape == (n, feat.n_experts)
    assert dk.label_bias.dtype == np.float32 and dk.label_bias.shape == (len(feat.labels),)
    assert dk.linked.dtype == np.bool_ and dk.linked.shape == (n,)
    assert np.isfinite(dk.dense).all() and np.isfinite(dk.expert_bias).all()


def token_ids(dk: DocKnowledge, feat: KnowledgeFeaturizer, i: int) -> set:
    return {feat.id_name(int(x)) for x in dk.ids[dk.ids_indptr[i] : dk.ids_indptr[i + 1]]}


def test_sizes(feat, kb) -> None:
    assert feat.n_ids == kb.n_types + kb.n_predicates + 4 + N_FLAGS
    assert feat.n_dense == kb.n_features + 2
    assert [feat.id_name(feat.n_ids - N_FLAGS + i) for i in range(N_FLAGS)] == list(FLAG_NAMES)
    with pytest.raises(IndexError):
        feat.id_name(feat.n_ids)


def test_linked_span_features(nlp, feat, kb) -> None:
    doc = nlp("Chelsea Football Club won the Premier League 2-1 with Tony Blair watching.")
    dk = feat(doc)
    check_valid(dk, feat, len(doc))
    club = token_ids(dk, feat, 0)
    # types with their superclass closure, predicates, flags, and the kb_type rule
    assert {f"type:{EX}FootballClub", f"type:{EX}SportsTeam", f"type:{EX}Organization"} <= club
    assert {f"predicate:{EX}playsIn", f"predicate:{EX}basedIn", "flag:linked", "flag:link_begin"} <= club
    assert {"rule:team", "flag:rule"} <= club
    assert "flag:link_begin" not in token_ids(dk, feat, 1) and f"type:{EX}SportsTeam" in token_ids(dk, feat, 2)
    assert token_ids(dk, feat, 3) == set()  # "won"
    # dense: graph features of the entity, is_linked, prior; zeros elsewhere
    club_id = kb.entity_id(EX + "ChelseaFC")
    nf = kb.n_features
    np.testing.assert_allclose(dk.dense[0, :nf], kb.feature_matrix[club_id])
    assert dk.dense[0, nf] == 1.0 and dk.dense[2, nf] == 1.0 and 0.0 < dk.dense[0, nf + 1] <= 1.0
    assert not dk.dense[3].any()
    assert dk.linked[:3].all() and not dk.linked[3]
    # extensions
    ents = doc._.kb_entities
    assert [(s.text, s._.kb_iri) for s in ents] == [
        ("Chelsea Football Club", EX + "ChelseaFC"), ("Premier League", EX + "PremierLeague"),
        ("Tony Blair", EX + "TonyBlair")]
    assert all(isinstance(s, Span) and s.kb_id_ == s._.kb_iri for s in ents)
    assert EX + "Person" in ents[2]._.kb_types and EX + "Politician" in ents[2]._.kb_types
    assert isinstance(ents[0]._.kb_prior, float) and ents[0]._.kb_prior == pytest.approx(1.0)
    # a Span made afterwards over the same tokens sees the values too
    assert doc[0:3]._.kb_iri == EX + "ChelseaFC"


def test_rule_biases(nlp, feat) -> None:
    doc = nlp("Chelsea Football Club won the Premier League 2-1 with Tony Blair watching.")
    dk = feat(doc)
    hits = sorted(doc._.rule_hits)
    assert hits == [("league", 5, 7), ("party", 11, 13), ("score", 7, 10), ("team", 0, 3)]
    # expert_bias: weight * experts on covered tokens only
    np.testing.assert_allclose(dk.expert_bias[0], [0, 0, 2.0])       # team: expert 2 x 2.0
    np.testing.assert_allclose(dk.expert_bias[5], [0, 1.0, 0])       # league
    np.testing.assert_allclose(dk.expert_bias[8], [0.5, 0, 0])       # score: weight 0.5, expert 0
    assert not dk.expert_bias[3].any() and not dk.expert_bias[11].any()  # "party" has no experts
    # label_bias: sum over hits of weight * labels (politics, sport, tech)
    np.testing.assert_allclose(dk.label_bias, [1.0, 1.0 + 2.0 + 0.5, 0.0])
    assert "rule:score" in token_ids(dk, feat, 7) and "rule:score" not in token_ids(dk, feat, 6)
    assert dk.linked[7:10].all()


def test_knowledge_off_gives_zeros_with_shapes(nlp) -> None:
    feat = KnowledgeFeaturizer(nlp.vocab, None, None, labels=LABELS, n_experts=4)
    assert feat.n_ids == N_FLAGS and feat.n_dense == 2
    doc = nlp("Chelsea beat Arsenal 2-1 in the Premier League.")
    dk = feat(doc)
    check_valid(dk, feat, len(doc))
    assert dk.ids.size == 0 and not dk.ids_indptr.any()
    assert not dk.dense.any() and not dk.expert_bias.any() and not dk.label_bias.any() and not dk.linked.any()
    assert list(doc._.kb_entities) == [] and doc._.rule_hits == ()


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "?!"])
def test_empty_and_whitespace_docs(nlp, feat, text: str) -> None:
    doc = nlp(text)
    dk = feat(doc)
    check_valid(dk, feat, len(doc))
    assert dk.ids.size == 0 and not dk.label_bias.any()
    assert list(doc._.kb_entities) == []


def test_long_doc(nlp, feat) -> None:
    sentence = "Chelsea beat Arsenal 2-1 at Stamford Bridge and Tony Blair said the Premier League is fine. "
    doc = nlp(sentence * 600)  # ~11k tokens
    start = time.perf_counter()
    dk = feat(doc)
    assert time.perf_counter() - start < 5.0
    check_valid(dk, feat, len(doc))
    assert len(doc._.kb_entities) == 5 * 600
    assert dk.label_bias[1] == pytest.approx(600 * (2.0 + 0.5 + 2 * 1.0))  # league, score, 2 teams


def test_pipe_equals_call(nlp, feat) -> None:
    texts = ["Tony Blair met Gordon Brown.", "", "Arsenal 3-0 Chelsea", "Nothing here."]
    batch = feat.pipe(nlp(t) for t in texts)
    for text, got in zip(texts, batch):
        want = feat(nlp(text))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_extensions_registered_once() -> None:
    for name in ("kb_entities", "rule_hits"):
        assert Doc.has_extension(name)
    for name in ("kb_link", "kb_iri", "kb_types", "kb_prior"):
        assert Span.has_extension(name)
    importlib.reload(features_module)  # registering again must not raise
    assert Doc.get_extension("kb_entities")[0] is None


def test_lowercase_links_are_flagged(nlp, feat) -> None:
    doc = nlp("He ate an apple at Chelsea Football Club.")
    dk = feat(doc)
    assert "flag:lowercase_link" in token_ids(dk, feat, 3)
    assert "flag:lowercase_link" not in token_ids(dk, feat, 5)
