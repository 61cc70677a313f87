"""Docs -> flat numpy inputs for :class:`~.torch.classifier.MoEDocClassifier`.

All of it is vectorised over the batch: one ``doc.to_array`` per document, then
numpy over the concatenated tokens. The arrays become tensors in ``wrapper.py``.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np
from spacy.attrs import IDS as ATTR_IDS
from spacy.tokens import Doc
from thinc.api import NumpyOps

_OPS = NumpyOps()
_BIGRAM_MIX = np.uint64(0x9E3779B97F4A7C15)


def doc_lengths(docs: Sequence[Doc]) -> np.ndarray:
    return np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))


def doc_index(lengths: np.ndarray) -> np.ndarray:
    """(N,) document of each token in the flat layout."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def hash_keys(keys: np.ndarray, seed: int, n_hashes: int) -> np.ndarray:
    """uint64 keys (N,) -> (N, n_hashes) uint32 MurmurHash values (thinc's ops.hash)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    if keys.size == 0:
        return np.zeros((0, n_hashes), dtype=np.uint32)
    return _OPS.hash(keys, seed)[:, :n_hashes]


class HashFeaturizer:
    """Hashed ids of lexical attributes for :class:`~.torch.encoder.HashEncoder`.

    attrs (Sequence[str]): token attributes, e.g. ["NORM", "PREFIX", "SUFFIX", "SHAPE"].
    rows (Sequence[int]): table rows per attribute (each attribute gets its own slice
        of one table, so ids never collide across attributes).
    n_hashes (int): hashes per key, summed by the encoder (fewer harmful collisions).
    window (int): gap between packed documents; >= the encoder's window.
    seed (int).
    """

    def __init__(self, attrs: Sequence[str], rows: Sequence[int], *, n_hashes: int = 2, window: int = 1,
                 seed: int = 0) -> None:
        if len(attrs) != len(rows):
            raise ValueError(f"attrs {list(attrs)} and rows {list(rows)} must have the same length")
        self.attrs = [a.upper() for a in attrs]
        self.attr_ids = [ATTR_IDS[a] for a in self.attrs]
        self.rows = np.asarray(rows, dtype=np.uint64)
        self.offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
        self.n_rows = int(sum(rows))
        self.n_hashes = n_hashes
        self.window = window
        self.seed = seed

    def __call__(self, docs: Sequence[Doc]) -> Dict[str, object]:
        lengths = doc_lengths(docs)
        n = int(lengths.sum())
        keys = np.zeros((n, len(self.attr_ids)), dtype=np.uint64)
        start = 0
        for doc, length in zip(docs, lengths):
            if length:
                keys[start : start + length] = doc.to_array(self.attr_ids)
                start += length
        cols = []
        for j in range(len(self.attr_ids)):
            h = hash_keys(keys[:, j], self.seed + j, self.n_hashes).astype(np.uint64) % self.rows[j]
            cols.append(h.astype(np.int64) + self.offsets[j])
        ids = np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)
        # pack: gap rows before every document and after the last one
        gap = self.window
        starts = np.cumsum(np.concatenate([[gap], lengths + gap]))[:-1]
        packed_pos = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        packed_pos += np.repeat(starts, lengths)
        n_packed = int(lengths.sum() + gap * (len(lengths) + 1))
        return {"hash_ids": ids, "packed_pos": packed_pos, "n_packed": n_packed}


class PieceFeaturizer:
    """Word pieces for :class:`~.torch.encoder.TransformerEncoder`.

    tokenizer: a Hugging Face fast tokenizer (needs ``word_ids``).
    chunk (int): spaCy tokens per transformer sequence; long documents are split
        into several sequences, so no document is truncated.
    max_length (int): pieces per sequence (the rare overflow is truncated).
    """

    def __init__(self, tokenizer: object, *, chunk: int = 128, max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.chunk = chunk
        self.max_length = max_length

    def __call__(self, docs: Sequence[Doc]) -> Dict[str, object]:
        words: List[List[str]] = []
        firsts: List[int] = []  # flat token row of each chunk's first word
        row = 0
        for doc in docs:
            texts = [t.text if t.text.strip() else "" for t in doc]
            for i in range(0, len(texts), self.chunk):
                words.append(texts[i : i + self.chunk])
                firsts.append(row + i)
            row += len(doc)
        n_tokens = row
        if not words:
            empty = np.zeros((0, 1), dtype=np.int64)
            return {"input_ids": empty, "attention_mask": empty, "piece_token": empty, "n_tokens": n_tokens}
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length,
                             padding=True, return_tensors="np")
        piece_token = np.full(enc["input_ids"].shape, n_tokens, dtype=np.int64)
        for s, first in enumerate(firsts):
            for p, w in enumerate(enc.word_ids(s)):
                if w is not None:
                    piece_token[s, p] = first + w
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
            "piece_token": piece_token,
            "n_tokens": n_tokens,
        }


def bow_features(docs: Sequence[Doc], rows: int, *, ngram_size: int = 2, seed: int = 97) -> Dict[str, np.ndarray]:
    """Hashed bag of 1..ngram_size-grams over NORM, one bag per document.

    Each document's distinct n-grams count once (weight 1: a binary bag; the model
    multiplies by its idf and L2-normalises). RETURNS ids (M,), offsets (B,),
    weights (M,) float32.
    """
    ids_per_doc: List[np.ndarray] = []
    for doc in docs:
        norms = doc.to_array(ATTR_IDS["NORM"]).astype(np.uint64) if len(doc) else np.zeros(0, np.uint64)
        grams = [norms]
        for n in range(2, ngram_size + 1):
            if len(norms) >= n:
                key = norms[: len(norms) - n + 1].copy()
                for j in range(1, n):
                    key = key * _BIGRAM_MIX ^ norms[j : len(norms) - n + 1 + j]
                grams.append(key + np.uint64(n))
        ids_per_doc.append(np.unique(np.concatenate(grams)))
    counts = np.fromiter((len(x) for x in ids_per_doc), dtype=np.int64, count=len(ids_per_doc))
    keys = np.concatenate(ids_per_doc) if ids_per_doc else np.zeros(0, np.uint64)
    ids = (hash_keys(keys, seed, 1)[:, 0].astype(np.uint64) % np.uint64(max(rows, 1))).astype(np.int64)
    weights = np.ones(len(ids), dtype=np.float32)
    offsets = (np.cumsum(counts) - counts).astype(np.int64)
    return {"bow_ids": ids, "bow_offsets": offsets, "bow_weights": weights}


def knowledge_features(
    dks: Sequence[object], lengths: np.ndarray, *, n_dense: int, n_experts: int, n_labels: int
) -> Dict[str, np.ndarray]:
    """Concatenate per-document ``DocKnowledge`` into the flat layout.

    RETURNS know_ids (K,), know_offsets (N,) (one bag per token), know_dense (N, n_dense),
    expert_bias (N, E), label_bias (B, L).
    """
    n = int(lengths.sum())
    if not dks:
        return _no_knowledge(n, len(lengths), n_dense=n_dense, n_experts=n_experts, n_labels=n_labels)
    nnz = np.fromiter((len(dk.ids) for dk in dks), dtype=np.int64, count=len(dks))
    base = np.cumsum(nnz) - nnz
    offsets = [np.asarray(dk.ids_indptr[:-1], dtype=np.int64) + b for dk, b in zip(dks, base)]
    return {
        "know_ids": np.concatenate([np.asarray(dk.ids, dtype=np.int64) for dk in dks]),
        "know_offsets": np.concatenate(offsets) if n else np.zeros(0, np.int64),
        "know_dense": _stack_rows([dk.dense for dk in dks], (0, n_dense)),
        "expert_bias": _stack_rows([dk.expert_bias for dk in dks], (0, n_experts)),
        "label_bias": np.stack([np.asarray(dk.label_bias, dtype=np.float32) for dk in dks]).reshape(
            len(dks), n_labels
        ),
    }


def _no_knowledge(n: int, n_docs: int, *, n_dense: int, n_experts: int, n_labels: int) -> Dict[str, np.ndarray]:
    return {
        "know_ids": np.zeros(0, np.int64),
        "know_offsets": np.zeros(n, np.int64),
        "know_dense": np.zeros((n, n_dense), np.float32),
        "expert_bias": np.zeros((n, n_experts), np.float32),
        "label_bias": np.zeros((n_docs, n_labels), np.float32),
    }


def _stack_rows(parts: List[np.ndarray], empty_shape: tuple) -> np.ndarray:
    parts = [np.asarray(p, dtype=np.float32).reshape(-1, empty_shape[1]) for p in parts]
    return np.concatenate(parts) if parts else np.zeros(empty_shape, np.float32)


def featurize_batch(
    docs: Sequence[Doc],
    token_featurizer: Callable[[Sequence[Doc]], Dict[str, object]],
    knowledge: Sequence[object],
    *,
    bow_rows: int,
    ngram_size: int,
    n_dense: int,
    n_experts: int,
    n_labels: int,
) -> Dict[str, object]:
    """Everything the classifier's ``forward`` takes, as numpy (and two ints).
    ``knowledge``: one ``DocKnowledge`` per doc, or empty for no knowledge inputs."""
    lengths = doc_lengths(docs)
    inputs: Dict[str, object] = {
        "enc": token_featurizer(docs),
        "doc_index": doc_index(lengths),
        "n_docs": len(docs),
    }
    inputs.update(bow_features(docs, bow_rows, ngram_size=ngram_size))
    inputs.update(knowledge_features(knowledge, lengths, n_dense=n_dense, n_experts=n_experts, n_labels=n_labels))
    return inputs


def bow_doc_freq(docs: Sequence[Doc], rows: int, *, ngram_size: int = 2) -> np.ndarray:
    """(rows,) number of docs that contain each hashed n-gram."""
    ids = bow_features(docs, rows, ngram_size=ngram_size)["bow_ids"]
    return np.bincount(ids, minlength=rows).astype(np.float32)


__all__ = ["HashFeaturizer", "bow_doc_freq", "PieceFeaturizer", "bow_features", "featurize_batch", "knowledge_features"]
