"""Docs -> flat numpy inputs."""
from __future__ import annotations

import numpy as np
import spacy

from spacy_sparse_expert.ml.featurize import HashFeaturizer, bow_features, doc_index, knowledge_features
from spacy_sparse_expert.features.features import KnowledgeFeaturizer


def _docs():
    nlp = spacy.blank("en")
    return nlp, [nlp("The cat sat."), nlp(""), nlp("A dog barked at the cat")]


def test_hash_ids_ranges_and_packing():
    _, docs = _docs()
    feat = HashFeaturizer(["NORM", "PREFIX", "SUFFIX", "SHAPE"], [100, 50, 50, 20], n_hashes=2, window=1)
    out = feat(docs)
    ids, pos = out["hash_ids"], out["packed_pos"]
    assert ids.shape == (4 + 0 + 6, 8)
    bounds = [(0, 100), (100, 150), (150, 200), (200, 220)]
    for j, (lo, hi) in enumerate(bounds):
        assert ((ids[:, 2 * j : 2 * j + 2] >= lo) & (ids[:, 2 * j : 2 * j + 2] < hi)).all()
    # the same word gets the same ids wherever it is
    assert (ids[1] == ids[9]).all()  # "cat"
    # gap of one row before each doc and at the end
    assert pos.tolist() == [1, 2, 3, 4, 7, 8, 9, 10, 11, 12]
    assert out["n_packed"] == 10 + 4


def test_doc_index():
    assert doc_index(np.array([2, 0, 1])).tolist() == [0, 0, 2]


def test_bow_is_binary_and_normalised():
    nlp, _ = _docs()
    docs = [nlp("a a a b"), nlp("")]
    out = bow_features(docs, 1000, ngram_size=2)
    # unigrams {a, b} + bigrams {a a, a b} = 4 distinct n-grams in doc 0, none in doc 1
    assert out["bow_offsets"].tolist() == [0, 4]
    assert np.allclose(out["bow_weights"], 1.0)
    assert ((out["bow_ids"] >= 0) & (out["bow_ids"] < 1000)).all()


def test_knowledge_concatenation_offsets():
    nlp, docs = _docs()
    feat = KnowledgeFeaturizer(nlp.vocab, None, None, labels=["a", "b"], n_experts=3)
    dks = feat.pipe(docs)
    lengths = np.array([len(d) for d in docs])
    out = knowledge_features(dks, lengths, n_dense=feat.n_dense, n_experts=3, n_labels=2)
    assert out["know_offsets"].shape == (10,)
    assert out["know_dense"].shape == (10, feat.n_dense)
    assert out["expert_bias"].shape == (10, 3)
    assert out["label_bias"].shape == (3, 2)
    assert (np.diff(out["know_offsets"]) >= 0).all()
