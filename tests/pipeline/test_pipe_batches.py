"""The component's own batches in `nlp.pipe`: at least batch_size docs, grown until they
hold pipe_min_tokens tokens, so headlines share a forward pass; the cats are those of
one doc at a time either way."""
from __future__ import annotations

import numpy as np
import spacy

from spacy_sparse_expert.pipeline.textcat import _word_batches

from .conftest import make_examples, make_nlp


def test_word_batches_grow_short_docs_and_keep_long_ones() -> None:
    nlp = spacy.blank("en")
    short = [nlp.make_doc("Markets fell.") for _ in range(10)]  # 3 tokens each
    long = [nlp.make_doc(" ".join(["word"] * 50)) for _ in range(5)]
    sizes = [len(b) for b in _word_batches(iter(short), 2, 10)]
    assert sizes == [4, 4, 2]  # 12 tokens reached at the 4th doc; the rest at the end
    assert [len(b) for b in _word_batches(iter(long), 2, 10)] == [2, 2, 1]  # batch_size docs
    assert [len(b) for b in _word_batches(iter(short), 3, 0)] == [3, 3, 3, 1]  # spaCy's batches
    assert [d for b in _word_batches(iter(short + long), 0, 40) for d in b] == short + long  # order kept
    assert list(_word_batches(iter([]), 4, 10)) == []


def test_pipe_batches_give_the_cats_of_single_docs() -> None:
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    textcat = nlp.get_pipe("textcat")
    texts = ["Shares rose.", "", "The striker scored twice in the second half of the match. " * 20,
             "New phone.", "Election called."] * 6
    single = np.array([list(nlp(t).cats.values()) for t in texts])
    for min_tokens in (textcat.pipe_min_tokens, 0, 50):
        textcat.pipe_min_tokens = min_tokens
        got = np.array([list(d.cats.values()) for d in nlp.pipe(texts, batch_size=4)])
        np.testing.assert_allclose(got, single, rtol=0, atol=1e-5)
