"""The arrays of knowledge features, per doc and per batch, and the numpy steps that
build them (no spaCy: plain arrays in, plain arrays out).

A batch is assembled once over its flat tokens (`KnowledgeBatch`); the model reads those
flat arrays as they are (`flat_inputs`), and a doc's `DocKnowledge` is a view made when
asked for.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union, overload

import numpy as np

from .disambiguation import LinkResult
from .segments import segment_positions


class DocKnowledge(NamedTuple):
    """Knowledge features of one doc (n = number of tokens).

    ids_indptr (np.int64, (n + 1,)) and ids (np.int64, (nnz,)): per-token sparse ids in
        CSR form, sorted and unique within a token.
    dense (np.float32, (n, n_dense)): KB graph features of the linked entity, then
        is_linked and link_prior; zeros for unlinked tokens.
    expert_bias (np.float32, (n, n_experts)): sum of weight * experts of the rules that
        cover the token.
    label_bias (np.float32, (n_labels,)): sum over the doc's rule hits of weight * labels.
    linked (np.bool_, (n,)): token inside a linked span or a rule match.
    words (np.uint64, (w,)): the distinct NORM keys of the doc's linked entities'
        description words (entity_words.py), sorted; empty unless asked for.
    """

    ids_indptr: np.ndarray
    ids: np.ndarray
    dense: np.ndarray
    expert_bias: np.ndarray
    label_bias: np.ndarray
    linked: np.ndarray
    words: np.ndarray = np.zeros(0, dtype=np.uint64)


class KnowledgeBatch(Sequence[DocKnowledge]):
    """The DocKnowledge of a batch of docs, held as the batch's flat arrays.

    lengths (np.int64, (B,)): tokens per doc. indptr (np.int64, (N + 1,)) and ids: the
    per-token sparse ids of all N tokens; dense, expert_bias, linked: (N, ...) rows;
    label_bias (np.float32, (B, n_labels)). words_indptr (np.int64, (B + 1,)) and
    words (np.uint64): each doc's description words (``DocKnowledge.words``); None: none.
    """

    def __init__(self, lengths: np.ndarray, indptr: np.ndarray, ids: np.ndarray, dense: np.ndarray,
                 expert_bias: np.ndarray, label_bias: np.ndarray, linked: np.ndarray,
                 words_indptr: Optional[np.ndarray] = None, words: Optional[np.ndarray] = None) -> None:
        if words_indptr is None or words is None:
            words_indptr, words = np.zeros(len(lengths) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        self.words_indptr, self.words = words_indptr, words
        self.lengths = lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.indptr, self.ids, self.dense, self.expert_bias = indptr, ids, dense, expert_bias
        self.label_bias, self.linked = label_bias, linked

    def __len__(self) -> int:
        return len(self.lengths)

    @overload
    def __getitem__(self, i: int) -> DocKnowledge: ...

    @overload
    def __getitem__(self, i: slice) -> List[DocKnowledge]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[DocKnowledge, List[DocKnowledge]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"doc {i} out of range for a batch of {len(self)}")
        i %= len(self)
        b, e = int(self.starts[i]), int(self.starts[i + 1])
        first, last = int(self.indptr[b]), int(self.indptr[e])
        return DocKnowledge(self.indptr[b: e + 1] - first, self.ids[first:last], self.dense[b:e],
                            self.expert_bias[b:e], self.label_bias[i], self.linked[b:e],
                            self.words[self.words_indptr[i]:self.words_indptr[i + 1]])

    def __iter__(self) -> Iterator[DocKnowledge]:
        return (self[i] for i in range(len(self)))

    def flat_inputs(self) -> Dict[str, np.ndarray]:
        """The knowledge inputs of the classifier's forward (see ml/featurize.py's
        knowledge_features), without copying: one bag of ids per token."""
        return {"know_ids": self.ids, "know_offsets": self.indptr[:-1], "know_dense": self.dense,
                "expert_bias": self.expert_bias, "label_bias": self.label_bias}

    def doc_words(self) -> Tuple[np.ndarray, np.ndarray]:
        """(words_indptr (B + 1,), words): each doc's description words, without copying."""
        return self.words_indptr, self.words


class BatchLinks(NamedTuple):
    """The linked mentions of a batch, flat: the doc of each, then LinkResult's arrays."""

    docs: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    entities: np.ndarray
    priors: np.ndarray
    n_candidates: np.ndarray
    lowercase: np.ndarray

    @classmethod
    def of(cls, links: Sequence[LinkResult]) -> "BatchLinks":
        flat = getattr(links, "flat", None)  # a LinkResults: the linker's flat arrays
        if flat is not None:
            return cls(*flat)
        counts = np.fromiter((len(link.entities) for link in links), dtype=np.int64, count=len(links))
        if not counts.sum():
            e = LinkResult.empty()
            return cls(e.starts, e.starts, e.ends, e.entities, e.priors, e.n_candidates, e.lowercase)
        return cls(np.repeat(np.arange(len(links)), counts),
                   *(np.concatenate([getattr(link, name) for link in links])
                     for name in ("starts", "ends", "entities", "priors", "n_candidates", "lowercase")))


def span_tokens(starts: np.ndarray, ends: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(span index, token index) for every token of every span, vectorised."""
    lengths = ends - starts
    return np.repeat(np.arange(len(starts), dtype=np.int64), lengths), segment_positions(starts, lengths)


def expand_spans(
    starts: np.ndarray, ends: np.ndarray, span_idx: np.ndarray, values: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Give each value (belonging to span span_idx) to every token of its span:
    RETURNS (token index, value) pairs."""
    lengths = (ends - starts)[span_idx]
    return segment_positions(starts[span_idx], lengths), np.repeat(values, lengths)


__all__ = ["BatchLinks", "DocKnowledge", "KnowledgeBatch", "expand_spans", "span_tokens"]
