"""The words a KB says about each entity (its description), as the same hashed keys the
classifier's bag of n-grams uses for a document's own words.

A linked entity brings its description's words into its document's bag of words
("Manchester United" -> "professional association football club based in Manchester"),
at the weight of the model setting ``knowledge_words``. The words are shared with the
text's: "football" from a description and "football" in a training document are one
feature, so a document that names a club never seen in training still says
"football". That is how a KB helps any label set by itself: nothing in it is tuned to
the labels, and the classifier learns which words matter from the labelled documents.

Keys are spaCy NORM hashes (the n-gram path hashes NORM) of the description's tokens,
made with the pipeline's blank tokenizer; punctuation, numbers, spaces and stop words
are left out, and each entity keeps each word once (kb/description_words.py). ``kb
import`` stores them for spaCy's blank tokenizer of its language; other tokenizers (or
KBs imported before) build them once per KB and vocab, on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
from spacy.tokens import Doc

from ..kb.description_words import description_words, distinct_by_owner

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase


class EntityWords(NamedTuple):
    """Per entity, the distinct NORM keys of its description's words, CSR: the keys of
    entity e are ``keys[indptr[e]:indptr[e + 1]]`` (sorted)."""

    indptr: np.ndarray  # int64 (n_entities + 1,)
    keys: np.ndarray    # uint64

    @property
    def n_with_words(self) -> int:
        return int(np.count_nonzero(np.diff(self.indptr)))


def _descriptions(kb: "KnowledgeBase") -> list[str]:
    # a KB compiled before descriptions were imported has none
    descriptions = getattr(kb, "descriptions", None)
    return list(descriptions) if descriptions is not None else [""] * kb.n_entities


def build_entity_words(kb: "KnowledgeBase", make_doc: Callable[[str], Doc]) -> EntityWords:
    """EntityWords of `kb`'s descriptions, tokenized by `make_doc`."""
    return EntityWords(*description_words(_descriptions(kb), make_doc))


def entity_words(kb: "KnowledgeBase", make_doc: Callable[[str], Doc]) -> EntityWords:
    """`kb`'s EntityWords for the tokenizer `make_doc`: the ones `kb import` stored with the
    KB when they were made by the same tokenizer (spaCy's blank one of the language, named
    by its ``alias_index_key``), else built once per KB and vocab."""
    arrays = kb.entity_arrays
    key = getattr(make_doc, "alias_index_key", None)
    if (key is not None and arrays.words_tokenizer == key and arrays.words_indptr is not None
            and arrays.words is not None):
        return EntityWords(arrays.words_indptr, arrays.words)
    # keyed by the vocab itself (as the alias linker is): the NORM keys are its strings'
    return kb.derived(("entity_words", getattr(make_doc, "vocab", None)), lambda: build_entity_words(kb, make_doc))


def doc_words(words: EntityWords, docs: np.ndarray, entities: np.ndarray, n_docs: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct description keys of each doc's linked entities: ``docs`` / ``entities``
    name each link's doc and entity. RETURNS (indptr (n_docs + 1,) int64, keys uint64),
    each doc's keys sorted and distinct."""
    begin = words.indptr[entities]
    counts = words.indptr[entities + 1] - begin
    total = int(counts.sum())
    if total == 0:
        return np.zeros(n_docs + 1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    row_start = np.repeat(np.cumsum(counts) - counts, counts)
    keys = words.keys[np.repeat(begin, counts) + (np.arange(total, dtype=np.int64) - row_start)]
    return distinct_by_owner(keys, np.repeat(np.asarray(docs, dtype=np.int64), counts), n_docs)


__all__ = ["EntityWords", "build_entity_words", "doc_words", "entity_words"]
