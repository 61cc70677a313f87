"""Disambiguation over a batch (`ContextDisambiguator.batch`, which the linker's `pipe`
uses) gives the links of the reference linker doc by doc, on short texts (the first
sentence of each BBC test document, where most docs have nothing to re-rank and are
decided by arrays) mixed with whole documents (where nearly every doc re-ranks)."""
from __future__ import annotations

import re
from typing import List

import numpy as np

from spacy_sparse_expert.features.disambiguation import ContextDisambiguator

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
