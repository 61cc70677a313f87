"""The words of each entity's description as spaCy NORM hashes: what a classifier's bag
of n-grams adds for a linked entity (features/entity_words.py). ``kb import`` makes them
for spaCy's blank tokenizer of the import language and stores them with the KB's entity
arrays (kb/views.py), so a pipeline does not tokenize every description on its first
document (13,666 descriptions take ~0.4 s; a large KB's millions, minutes).

Per description: its tokens that are alphabetic and not stop words, each NORM once,
sorted. spaCy is imported by the callers' tokenizers, not here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def description_words(descriptions: Sequence[str], make_doc: Callable[[str], Any]) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64 (n + 1,), keys uint64): the distinct NORM keys of each description's
    alphabetic non-stop-word tokens, sorted, as `make_doc` tokenizes them."""
    from spacy.attrs import IS_ALPHA, IS_STOP, NORM

    owners: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    for e, text in enumerate(descriptions):
        if not text:
            continue
        # one to_array per description: no per-token Python
        rows = make_doc(text).to_array([NORM, IS_ALPHA, IS_STOP])
        keys = rows[(rows[:, 1] == 1) & (rows[:, 2] == 0), 0]
        parts.append(keys)
        owners.append(np.full(len(keys), e, dtype=np.int64))
    if not parts:
        return np.zeros(len(descriptions) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    return distinct_by_owner(np.concatenate(parts).astype(np.uint64), np.concatenate(owners), len(descriptions))


def distinct_by_owner(keys: np.ndarray, owner: np.ndarray, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64 (n_owners + 1,), keys): each owner's distinct `keys` (uint64, any
    order, `owner[i]` the owner of `keys[i]`), sorted, as CSR. Two sorts, no per-owner
    Python (the keys are 64-bit hashes: no room to pack the owner into them)."""
    order = np.argsort(keys, kind="stable")
    order = order[np.argsort(owner[order], kind="stable")]
    keys, owner = keys[order], owner[order]
    keep = np.ones(len(keys), dtype=np.bool_)
    keep[1:] = (keys[1:] != keys[:-1]) | (owner[1:] != owner[:-1])
    indptr = np.zeros(n_owners + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner[keep], minlength=n_owners), out=indptr[1:])
    return indptr, keys[keep]


def blank_description_words(descriptions: Sequence[str], lang: str) -> tuple[np.ndarray, np.ndarray]:
    """`description_words` for spaCy's blank tokenizer of `lang` (what `kb import` stores)."""
    import spacy

    return description_words(descriptions, spacy.blank(lang).tokenizer)


__all__ = ["blank_description_words", "description_words", "distinct_by_owner"]
