"""Disambiguation over a batch (`ContextDisambiguator.choose`, which the linker's `pipe`
uses) gives the links of the reference linker doc by doc, on short texts (the first
sentence of each BBC test document, where most docs have nothing to re-rank and are
decided by arrays) mixed with whole documents (where nearly every doc re-ranks)."""
from __future__ import annotations

import re
from typing import List

import numpy as np
import pytest

from spacy_sparse_expert.features.disambiguation import ContextDisambiguator, MentionArrays
from spacy_sparse_expert.features.segments import in_sorted_rows, rows_sorted
from spacy_sparse_expert.features.linker import LinkerConfig

from .reference_linker import ReferenceContextDisambiguator
from .test_alias_index import bbc_test, linkers, nlp  # noqa: F401 (fixtures)

_SENTENCE_END = re.compile(r"\n|[.!?](?=\s)")


def _first_sentence(text: str) -> str:
    text = text.lstrip()
    m = _SENTENCE_END.search(text)
    return (text[: m.end()] if m else text).strip()


def test_batch_gives_the_reference_links_on_short_and_long_bbc_texts(linkers, bbc_test: List[str], nlp) -> None:
    fast, ref = linkers
    assert isinstance(fast._disambiguate, ContextDisambiguator)
    texts = [_first_sentence(t) for t in bbc_test] + bbc_test[:8] + ["", "Chelsea."]
    docs = [nlp.make_doc(t) for t in texts]
    by_arrays = re_ranked = 0
    for i in range(0, len(docs), 64):
        batch = docs[i: i + 64]
        mentions = fast.mentions_batch(batch)
        for doc, got, ms in zip(batch, fast.pipe(batch), mentions):
            want = ref(doc)
            assert got.starts.tolist() == want.starts.tolist(), doc.text[:80]
            assert got.ends.tolist() == want.ends.tolist(), doc.text[:80]
            assert [fast.kb.entities[e] for e in got.entities.tolist()] == \
                [ref.kb.entities[e] for e in want.entities.tolist()], doc.text[:80]
            np.testing.assert_allclose(got.priors, want.priors, rtol=0, atol=1e-6)
            assert got.n_candidates.tolist() == want.n_candidates.tolist()
            assert got.lowercase.tolist() == want.lowercase.tolist()
            assert got.priors.dtype == np.float32 and got.entities.dtype == np.int64
            ambiguous = any(len(m[2][0]) > 1 for m in ms)
            if ambiguous and len(got.entities) and len(ms) > 1:
                re_ranked += 1
            elif len(got.entities):
                by_arrays += 1
    # both ways of deciding a doc were compared, many times
    assert by_arrays > 50 and re_ranked > 5, (by_arrays, re_ranked)


@pytest.mark.parametrize("config", [
    LinkerConfig(),
    LinkerConfig(neighbour_weight=0.0),
    LinkerConfig(confident_prior=0.3, min_margin=0.3, max_flat_candidates=1, flat_prior=0.95),
    LinkerConfig(context_weight=3.0, min_context_support=0.1, flat_prior=0.9),
], ids=["default", "no_neighbours", "strict_margin", "strong_context"])
def test_array_choice_equals_the_reference_loops_under_other_settings(linkers, bbc_test: List[str], nlp,
                                                                     config: LinkerConfig) -> None:
    """The array disambiguation against the per-mention loops it replaced, on the same
    mentions of whole BBC documents, with thresholds far from the defaults."""
    fast, _ = linkers
    choose = ContextDisambiguator(fast.kb.entity_arrays, config)
    ref = ReferenceContextDisambiguator(fast.kb.entity_arrays, config)
    docs = [nlp.make_doc(t) for t in bbc_test[:40]]
    compared = dropped = 0
    for i in range(0, len(docs), 16):
        mentions = fast.mentions_batch(docs[i: i + 16])
        for ms, got in zip(mentions, choose.choose(MentionArrays.of(mentions), len(mentions))):
            want = ref(ms)
            assert got.starts.tolist() == want.starts.tolist()
            assert got.entities.tolist() == want.entities.tolist()
            assert got.priors.tolist() == want.priors.tolist()
            assert got.n_candidates.tolist() == want.n_candidates.tolist()
            assert got.lowercase.tolist() == want.lowercase.tolist()
            compared += len(want.entities)
            dropped += len(ms) - len(want.entities)
    assert compared > 500, compared
    if config.max_flat_candidates == 1:  # the strict setting drops ambiguous mentions
        assert dropped > 20, dropped


def test_context_counts_by_binary_search_give_the_same_links(linkers, bbc_test: List[str], nlp,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose (doc, feature) table would be too large looks the context counts up
    by binary search instead (the test above takes the table: 16 BBC documents of the
    shipped KB are ~6k cells); both give the reference's links."""
    import spacy_sparse_expert.features.disambiguation as disambiguation

    fast, _ = linkers
    config = LinkerConfig()
    ref = ReferenceContextDisambiguator(fast.kb.entity_arrays, config)
    docs = [nlp.make_doc(t) for t in bbc_test[:40]]
    batches = [fast.mentions_batch(docs[i: i + 16]) for i in range(0, len(docs), 16)]
    cells = [len(ms) * disambiguation.ContextDisambiguator(fast.kb.entity_arrays, config)._n_features
             for ms in batches]
    assert max(cells) <= disambiguation._MAX_TABLE_CELLS  # the default takes the table here
    monkeypatch.setattr(disambiguation, "_MAX_TABLE_CELLS", 0)
    choose = ContextDisambiguator(fast.kb.entity_arrays, config)
    compared = 0
    for mentions in batches:
        for ms, got in zip(mentions, choose.choose(MentionArrays.of(mentions), len(mentions))):
            want = ref(ms)
            assert got.starts.tolist() == want.starts.tolist()
            assert got.entities.tolist() == want.entities.tolist()
            compared += len(want.entities)
    assert compared > 500, compared


def test_in_sorted_rows_and_row_sorting_against_python_sets() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 40, size=200)
    counts[:3] = 0  # empty rows, first rows too
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = rng.integers(0, 300, size=int(indptr[-1])).astype(np.int64)
    by_row = rows_sorted(indptr, values)
    sets = [set(values[indptr[r]: indptr[r + 1]].tolist()) for r in range(200)]
    for r in range(200):  # each row sorted, the same values
        row = by_row[indptr[r]: indptr[r + 1]].tolist()
        assert row == sorted(values[indptr[r]: indptr[r + 1]].tolist())
    assert rows_sorted(indptr, by_row) is by_row  # sorted rows are read as they are
    rows = rng.integers(0, 200, size=5000)
    queries = rng.integers(0, 300, size=5000)
    got = in_sorted_rows(indptr, by_row, rows, queries)
    assert got.tolist() == [int(q) in sets[int(r)] for r, q in zip(rows, queries)]
    assert got.any() and not got.all()
    assert not in_sorted_rows(np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64),
                              np.array([0, 1]), np.array([5, 6])).any()


def test_signatures_keep_the_first_of_a_repeated_feature() -> None:
    """An entity's signature: its nearest types, then its predicates (after the types),
    each feature once, where it first appears, with its IDF weight; rows in order."""
    from spacy_sparse_expert.kb.views import EntityArrays

    def csr(rows: List[List[int]]) -> tuple:
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        return indptr, np.asarray([v for r in rows for v in r], dtype=np.int64)

    types_indptr, types = csr([[3, 1, 3], [2], []])  # entity 0 lists type 3 twice
    preds_indptr, preds = csr([[0, 1], [], [1]])
    nbr_indptr, nbrs = csr([[], [], []])
    type_idf = np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float32)
    pred_idf = np.array([0.25, 0.75], dtype=np.float32)
    arrays = EntityArrays(types_indptr, types, preds_indptr, preds, np.zeros((3, 0), np.float32), {}, {},
                          type_idf, pred_idf, nbr_indptr, nbrs)
    d = ContextDisambiguator(arrays, LinkerConfig())
    rows, feats, weights = d._signatures(np.array([0, 1, 2, 0], dtype=np.int64))
    assert rows.tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]
    assert feats.tolist() == [3, 1, 4, 5, 2, 5, 3, 1, 4, 5]
    assert weights.tolist() == [2.0, 1.0, 0.25, 0.75, 1.5, 0.75, 2.0, 1.0, 0.25, 0.75]
    # without a repeat nothing is dropped
    rows, feats, _ = d._signatures(np.array([1, 2], dtype=np.int64))
    assert rows.tolist() == [0, 1] and feats.tolist() == [2, 5]


def test_flat_links_equal_the_docs_links_concatenated(linkers, bbc_test: List[str], nlp) -> None:
    """The linker's batch answer carries its links flat; they are the per-doc results
    concatenated, as BatchLinks.of builds them from a plain list (docs without a link
    included, and a batch without any)."""
    from spacy_sparse_expert.features.disambiguation import LinkResults
    from spacy_sparse_expert.features.knowledge_arrays import BatchLinks

    fast, _ = linkers
    texts = [_first_sentence(t) for t in bbc_test[:60]] + bbc_test[:4] + ["", "nothing to link here"]
    flat_batches = 0
    for batch in ([nlp.make_doc(t) for t in texts], [nlp.make_doc("nothing to link here")]):
        links = fast.pipe(batch)
        assert len(links) == len(batch)
        flat_batches += isinstance(links, LinkResults)
        got, want = BatchLinks.of(links), BatchLinks.of(list(links))  # a plain list: concatenated
        for name in BatchLinks._fields:
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and a.tolist() == b.tolist(), name
    assert flat_batches >= 1
    assert len(BatchLinks.of(fast.pipe([nlp.make_doc(t) for t in texts])).entities) > 30
