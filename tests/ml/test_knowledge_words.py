"""The KB's words in a document's bag of n-grams (model setting knowledge_words):
each linked entity's description words join its document's bag at a lower weight,
share the n-gram table with the text's words, and leave with the doc's knowledge."""
from __future__ import annotations

import numpy as np
import spacy
import torch

from spacy_sparse_expert.features.entity_words import EntityWords, doc_words
from spacy_sparse_expert.ml.featurize import bow_features, hash_keys
from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier
from spacy_sparse_expert.ml.torch.encoder import HashEncoder


def _key(nlp: spacy.Language, word: str) -> int:
    return int(nlp.vocab.strings.add(word))


def test_doc_words_are_each_docs_distinct_entity_words():
    nlp = spacy.blank("en")
    football, club, london, film = (_key(nlp, w) for w in ("football", "club", "london", "film"))
    # entity 0: football club london; entity 1: film; entity 2: no description
    words = EntityWords(np.array([0, 3, 4, 4]), np.array(sorted([football, club, london]) + [film], dtype=np.uint64))
    # doc 0 links entity 0 twice and entity 2; doc 1 nothing; doc 2 entities 1 and 0
    indptr, keys = doc_words(words, np.array([0, 0, 0, 2, 2]), np.array([0, 0, 2, 1, 0]), 3)
    assert indptr.tolist() == [0, 3, 3, 7]
    assert sorted(keys[0:3].tolist()) == sorted([football, club, london])
    assert sorted(keys[3:7].tolist()) == sorted([football, club, london, film])
    empty_indptr, empty = doc_words(words, np.array([1]), np.array([2]), 2)
    assert empty_indptr.tolist() == [0, 0, 0] and empty.size == 0


def test_bow_gets_the_words_as_weighted_unigrams_of_the_same_table():
    nlp = spacy.blank("en")
    docs = [nlp("the match"), nlp(""), nlp("football today")]
    football = _key(nlp, "football")
    words = (np.array([0, 1, 1, 2]), np.array([football, football], dtype=np.uint64))
    plain = bow_features(docs, 1000, ngram_size=2)
    out = bow_features(docs, 1000, ngram_size=2, knowledge_words=words, words_weight=0.25)
    # the word follows each doc's own n-grams; offsets move by one per word
    assert out["bow_offsets"].tolist() == [0, 4, 4]
    mask = out["bow_knowledge"]
    assert mask.tolist() == [False, False, False, True, False, False, False, True]
    assert np.allclose(out["bow_weights"][mask], 0.25) and np.allclose(out["bow_weights"][~mask], 1.0)
    assert np.array_equal(out["bow_ids"][~mask], plain["bow_ids"])
    # "football" from the KB is the row of "football" in the text of doc 2
    row = int(hash_keys(np.array([football], dtype=np.uint64), 97, 1)[0, 0]) % 1000
    assert out["bow_ids"][mask].tolist() == [row, row]
    assert row in plain["bow_ids"][plain["bow_offsets"][2]:].tolist()
    # weight 0 or no words: the plain bag, no mask
    for kwargs in ({"knowledge_words": words, "words_weight": 0.0}, {}):
        same = bow_features(docs, 1000, ngram_size=2, **kwargs)
        assert "bow_knowledge" not in same and np.array_equal(same["bow_ids"], plain["bow_ids"])


def _model() -> MoEDocClassifier:
    torch.manual_seed(0)
    encoder = HashEncoder(50, 8, depth=1, d_hidden=8)
    model = MoEDocClassifier(encoder, width=8, n_labels=2, n_experts=2, k=1, d_ff=8, bow_rows=64, n_knowledge_ids=4)
    with torch.no_grad():
        assert model.bow is not None
        model.bow.weight.normal_()
    return model.eval()


def _inputs(with_words: bool) -> dict:
    n = 3
    ids = [1, 2, 3, 7, 9] + ([5] if with_words else [])
    weights = [1.0] * 5 + ([0.5] if with_words else [])
    inputs = {
        "enc": {"hash_ids": torch.tensor([[1], [2], [3]]), "packed_pos": torch.arange(n), "n_packed": n},
        "doc_index": torch.tensor([0, 0, 1]), "n_docs": 2,
        "bow_ids": torch.tensor(ids), "bow_offsets": torch.tensor([0, 3]), "bow_weights": torch.tensor(weights),
        "know_ids": torch.tensor([0, 1]), "know_offsets": torch.tensor([0, 1, 2]),
        "know_dense": torch.zeros(n, 0), "expert_bias": torch.zeros(n, 2), "label_bias": torch.zeros(2, 2),
    }
    if with_words:
        inputs["bow_knowledge"] = torch.tensor([False] * 5 + [True])
    return inputs


def test_words_move_the_ngram_logits_and_leave_with_knowledge_off():
    model = _model()
    with torch.no_grad():
        plain = model(**_inputs(False)).contributions["ngrams"]
        words = model(**_inputs(True)).contributions["ngrams"]
        # doc 1 has the word: its n-gram logits change, doc 0's do not
        assert torch.allclose(words[0], plain[0]) and not torch.allclose(words[1], plain[1])
        model.knowledge_on = False
        off = model(**_inputs(True)).contributions["ngrams"]
    assert torch.allclose(off, plain)


def test_linked_entities_bring_their_description_words(shipped_kb_dir):
    from spacy_sparse_expert.features.features import KnowledgeFeaturizer
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.from_disk(shipped_kb_dir)
    nlp = spacy.blank("en")
    docs = [nlp("Manchester United lost at home."), nlp("It rained all day.")]
    with_words = KnowledgeFeaturizer(nlp.vocab, kb, None, labels=["a", "b"], n_experts=2, entity_words=True)
    batch = with_words.pipe(docs)
    # the keys come from the KB folder (kb import stored them): compared as hashes
    words = [set(dk.words.tolist()) for dk in batch]
    key = nlp.vocab.strings.add
    # a club's description speaks of football; a doc without links gets no words
    assert {key("football"), key("club")} <= words[0] and not words[1]
    assert not any(key(t) in words[0] for t in ("the", "at", ","))  # no stop words or punctuation
    # the words are exactly those of the linked entities' descriptions, tokenized
    linked = {e for e in with_words.linker.pipe(docs[:1])[0].entities.tolist()}
    expected = {t.norm for e in linked for t in nlp.make_doc(kb.description(e)) if t.is_alpha and not t.is_stop}
    assert words[0] == expected
    # off (the default): no words, the rest of the features unchanged
    without = KnowledgeFeaturizer(nlp.vocab, kb, None, labels=["a", "b"], n_experts=2).pipe(docs)
    assert all(len(dk.words) == 0 for dk in without)
    assert np.array_equal(without[0].ids, batch[0].ids) and np.array_equal(without[0].dense, batch[0].dense)


def test_stored_words_equal_words_built_at_first_use(shipped_kb_dir):
    """kb import stores the words for spaCy's blank tokenizer; a KB without them (from
    bytes here) builds the same ones on first use, and a tokenizer of another name
    builds its own instead of reading the stored ones."""
    from spacy_sparse_expert.features.entity_words import build_entity_words, entity_words
    from spacy_sparse_expert.features.linker import blank_tokenizer
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.from_disk(shipped_kb_dir)
    make_doc = blank_tokenizer(spacy.blank("en").vocab)
    stored = entity_words(kb, make_doc)
    assert stored.keys is kb.entity_arrays.words and stored.n_with_words > 13000
    again = KnowledgeBase.from_bytes(kb.to_bytes())
    assert again.entity_arrays.words_tokenizer is None
    built = entity_words(again, make_doc)
    assert np.array_equal(built.indptr, stored.indptr) and np.array_equal(built.keys, stored.keys)
    other = spacy.blank("en").tokenizer  # no alias_index_key: never trusted with stored keys
    assert entity_words(kb, other).keys is not kb.entity_arrays.words
    assert np.array_equal(build_entity_words(kb, other).keys, stored.keys)
