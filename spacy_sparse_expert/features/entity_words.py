"""The words a KB says about each entity (its description), as the same hashed keys the
classifier's bag of n-grams uses for a document's own words.

A linked entity brings its description's words into its document's bag of words
("Arsenal" -> "association football club in London"), weighted below the document's
own words (the model setting ``knowledge_words``). The words are shared with the
text's: "football" from a description and "football" in a training document are one
feature, so a document that names a club never seen in training still says
"football". That is how a KB helps any label set by itself: nothing in it is tuned to
the labels, and the classifier learns which words matter from the labelled documents.

Keys are spaCy NORM hashes (the n-gram path hashes NORM) of the description's tokens,
made with the pipeline's blank tokenizer; punctuation, numbers, spaces and stop words
are left out, and each entity keeps each word once. Built once per KB and vocab (a
tokenizer pass over the descriptions: ~0.1 s for the shipped KB's 13,666).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
from spacy.attrs import IS_ALPHA, IS_STOP, NORM
from spacy.tokens import Doc

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
    texts = _descriptions(kb)
    owners: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    for e, text in enumerate(texts):
        if not text:
            continue
        # one to_array per description: no per-token Python
        rows = make_doc(text).to_array([NORM, IS_ALPHA, IS_STOP])
        keys = rows[(rows[:, 1] == 1) & (rows[:, 2] == 0), 0]
        parts.append(keys)
        owners.append(np.full(len(keys), e, dtype=np.int64))
    indptr = np.zeros(kb.n_entities + 1, dtype=np.int64)
    if not parts:
        return EntityWords(indptr, np.zeros(0, dtype=np.uint64))
    keys_all, owner = np.concatenate(parts).astype(np.uint64), np.concatenate(owners)
    # each entity's keys sorted and distinct: by key, then stably by entity
    order = np.argsort(keys_all, kind="stable")
    order = order[np.argsort(owner[order], kind="stable")]
    keys_all, owner = keys_all[order], owner[order]
    keep = np.ones(len(keys_all), dtype=np.bool_)
    keep[1:] = (keys_all[1:] != keys_all[:-1]) | (owner[1:] != owner[:-1])
    np.cumsum(np.bincount(owner[keep], minlength=kb.n_entities), out=indptr[1:])
    return EntityWords(indptr, keys_all[keep])


def entity_words(kb: "KnowledgeBase", make_doc: Callable[[str], Doc]) -> EntityWords:
    """`kb`'s EntityWords for the tokenizer `make_doc`, built once per KB and vocab."""
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
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    if total == 0:
        return indptr, np.zeros(0, dtype=np.uint64)
    row_start = np.repeat(np.cumsum(counts) - counts, counts)
    keys = words.keys[np.repeat(begin, counts) + (np.arange(total, dtype=np.int64) - row_start)]
    owner = np.repeat(np.asarray(docs, dtype=np.int64), counts)
    # distinct (doc, key): sort by key, then stably by doc
    order = np.argsort(keys, kind="stable")
    order = order[np.argsort(owner[order], kind="stable")]
    keys, owner = keys[order], owner[order]
    keep = np.ones(total, dtype=np.bool_)
    keep[1:] = (keys[1:] != keys[:-1]) | (owner[1:] != owner[:-1])
    keys, owner = keys[keep], owner[keep]
    np.cumsum(np.bincount(owner, minlength=n_docs), out=indptr[1:])
    return indptr, keys


__all__ = ["EntityWords", "build_entity_words", "doc_words", "entity_words"]
