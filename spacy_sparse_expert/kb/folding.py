"""Accent folding for alias matching: "Sao Paulo" finds "São Paulo" and "Zürich" finds
"Zurich". Both sides are folded the same way (Unicode NFKD, combining marks dropped, NFC
again), at lookup and match time only: the compiled KB keeps its aliases and labels as
written, so its format does not change and labels display with their accents.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np


def fold_accents(text: str) -> str:
    """`text` without combining marks: "São Paulo" -> "Sao Paulo", "Ærø" stays "Ærø"
    (Æ and ø are letters, not letters with marks). Case is kept."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed
    # NFC again: scripts whose syllables NFKD splits into letters (Hangul) come back whole
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def folded_index(aliases: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Folded alias -> the alias ids that fold to it, the unfolded match first."""
    index: dict[str, list[int]] = {}
    for i, alias in enumerate(aliases):
        index.setdefault(fold_accents(alias), []).append(i)
    for key, ids in index.items():
        if len(ids) > 1:  # the alias written exactly as the key (no accents) leads
            ids.sort(key=lambda i: aliases[i] != key)
    return {key: tuple(ids) for key, ids in index.items()}


def merge_candidates(lists: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge the (entity ids, priors) of several aliases, the best-matching alias first:
    each entity once with its highest prior, priors renormalised to sum to 1, highest
    first, ties to the entity of the earlier alias."""
    if len(lists) == 1:
        return lists[0]
    ents = np.concatenate([e for e, _ in lists]).astype(np.int64)
    pri = np.concatenate([p for _, p in lists]).astype(np.float64)
    rank = np.repeat(np.arange(len(lists)), [len(e) for e, _ in lists])
    order = np.lexsort((rank, -pri, ents))  # per entity: best prior, then earlier alias, first
    ents, pri, rank = ents[order], pri[order], rank[order]
    first = np.ones(len(ents), dtype=bool)
    first[1:] = ents[1:] != ents[:-1]
    ents, pri, rank = ents[first], pri[first], rank[first]
    if pri.sum() > 0:
        pri = pri / pri.sum()
    order = np.lexsort((rank, -pri))
    return ents[order].astype(np.int32), pri[order].astype(np.float32)


__all__ = ["fold_accents", "folded_index", "merge_candidates"]
