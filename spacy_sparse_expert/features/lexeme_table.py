"""What the alias linker reads of each token, kept per distinct word: a doc then costs one
`doc.to_array(ORTH)` and one binary search per token, where reading eight token
attributes costs four times as much (~0.05 microseconds per attribute and word).

A row holds the word's LOWER hash, the row of that hash among the aliases' first tokens
(`AliasPatterns.first_rows`, -1 if none) and flags: capitalised (Title, UPPER, or any
capital: "iPod"), lowercase, whitespace, sentence-breaking punctuation, a title ("Mr").
Rows are of the accent-folded word (the aliases are folded too): a word that is not ASCII
takes the attributes of its folded form's lexeme, exactly as a Doc of folded words would.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import numpy as np
from spacy.strings import hash_string
from spacy.vocab import Vocab

from ..kb.folding import fold_accents
from .alias_spans import AliasPatterns
from .hash_lookup import SortedHashes

CAP, LOWERCASE, SPACE, SENT_BREAK, TITLE = 1, 2, 4, 8, 16


class LexemeTable:
    """Per-word rows for the linker, added on first sight of a word, looked up by ORTH.

    vocab (Vocab): the vocab of the docs.
    patterns (AliasPatterns): the linker's patterns (for the first-token rows).
    titles (Iterable[str]): words that may precede a name ("Mr", "President").
    sent_breaks (Iterable[str]): tokens after which a capital may only mean a sentence start.
    """

    def __init__(self, vocab: Vocab, patterns: AliasPatterns, titles: Iterable[str],
                 sent_breaks: Iterable[str]) -> None:
        self.vocab = vocab
        self.patterns = patterns
        self._titles = {hash_string(t.lower()) for t in titles}
        self._breaks = {hash_string(t) for t in sent_breaks}
        self.orths = np.zeros(0, dtype=np.uint64)  # sorted; the other arrays are aligned
        self.lower = np.zeros(0, dtype=np.uint64)
        self.first_row = np.zeros(0, dtype=np.int64)
        self.flags = np.zeros(0, dtype=np.uint8)
        # a small int per distinct LOWER hash (words that differ only in case share it), so
        # that the linker compares words without sorting the batch's hashes
        self.lower_id = np.zeros(0, dtype=np.int64)
        self._lower_ids: Dict[int, int] = {}
        self._index = SortedHashes(self.orths)

    def __len__(self) -> int:
        return int(self.orths.shape[0])

    def rows(self, orths: np.ndarray) -> np.ndarray:
        """int64 (n,): the row of each ORTH hash, adding the words not seen before."""
        pos = self._find(orths)
        missing = pos < 0
        if missing.any():
            self._add(np.unique(orths[missing]))
            pos = self._find(orths)
        return pos

    def _find(self, orths: np.ndarray) -> np.ndarray:
        return self._index.find(orths)

    def _row(self, orth: int) -> Tuple[int, int]:
        lex = self.vocab[orth]
        if not lex.is_ascii:
            text = lex.orth_
            folded = fold_accents(text) or text
            if folded != text:
                lex = self.vocab[folded]
        cap = lex.is_title or lex.is_upper or (lex.is_alpha and not lex.is_lower)
        flags = ((CAP if cap else 0) | (LOWERCASE if lex.is_lower else 0) | (SPACE if lex.is_space else 0)
                 | (SENT_BREAK if lex.orth in self._breaks else 0) | (TITLE if lex.lower in self._titles else 0))
        return lex.lower, flags

    def _add(self, new: np.ndarray) -> None:
        """Add the rows of ORTH hashes `new` (sorted, unique, none in the table yet)."""
        rows: List[Tuple[int, int]] = [self._row(o) for o in new.tolist()]
        lower = np.array([r[0] for r in rows], dtype=np.uint64)
        flags = np.array([r[1] for r in rows], dtype=np.uint8)
        # `new` is sorted: inserting at its search positions keeps the table sorted with
        # one copy (no sort), so a stream that keeps meeting new words stays linear
        at = np.searchsorted(self.orths, new)
        self.orths = np.insert(self.orths, at, new.astype(np.uint64))
        self.lower = np.insert(self.lower, at, lower)
        self.first_row = np.insert(self.first_row, at, self.patterns.first_rows(lower))
        self.flags = np.insert(self.flags, at, flags)
        ids = self._lower_ids
        self.lower_id = np.insert(self.lower_id, at, np.array([ids.setdefault(r[0], len(ids)) for r in rows],
                                                              dtype=np.int64))
        self._index = SortedHashes(self.orths)


__all__ = ["CAP", "LOWERCASE", "LexemeTable", "SENT_BREAK", "SPACE", "TITLE"]
