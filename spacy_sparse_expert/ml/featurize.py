"""Docs -> flat numpy inputs for :class:`~.torch.classifier.MoEDocClassifier`.

All of it is vectorised over the batch: one ``doc.to_array`` per document, then
numpy over the concatenated tokens. The arrays become tensors in ``wrapper.py``.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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


_DIGEST_MIX = np.uint64(0xBF58476D1CE4E5B9)


def token_digests(keys: np.ndarray) -> np.ndarray:
    """(N, C) integer rows -> (N,) int64: a 64-bit digest of each row, the key of the
    classifier's token cache (``torch/token_cache.py``). ``featurize_batch`` digests
    each token's attribute keys (``HashFeaturizer.token_keys``), from which its hashed
    ids follow, so a token found in the cache needs no hashing. Each column is mixed in
    with a xor, a multiplication by an odd constant (a bijection of uint64) and a
    xor-shift, so two different rows share a digest only by a 64-bit collision."""
    ids = np.ascontiguousarray(keys).astype(np.uint64, copy=False)
    key = np.full(ids.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(ids.shape[1]):
        key ^= ids[:, j]
        key *= _DIGEST_MIX
        key ^= key >> np.uint64(31)
    return key.view(np.int64)


def knowledge_digests(token_keys: np.ndarray, know_ids: np.ndarray, know_offsets: np.ndarray,
                      know_dense: np.ndarray, expert_bias: np.ndarray) -> np.ndarray:
    """(N,) int64: the key under which the token cache keeps each token's state with its
    knowledge (``torch/cached_forward.py``). A token with knowledge inputs (a non-empty
    bag of knowledge ids, a non-zero dense row or expert bias) gets a digest of its token
    key (``token_digests``), its bag's ids in bag order and the bits of its dense row and
    expert bias; every other token keeps its token key, since zero knowledge adds exactly
    nothing to its state. Inside a linked span or a rule match the same words mostly carry
    the same knowledge (on the BBC test set 18k such tokens, 3.3k distinct), so these
    states are computed once too.

    token_keys (N,) int64; know_ids (K,) with know_offsets (N,) (one bag per token);
    know_dense (N, n_dense) and expert_bias (N, E) float32: ``knowledge_features``."""
    n = token_keys.shape[0]
    sizes = np.diff(know_offsets, append=np.int64(len(know_ids))).astype(np.int64)
    informed = sizes > 0
    for values in (know_dense, expert_bias):
        for j in range(values.shape[1]):  # a column at a time: ~4x faster than .any(axis=1) at these widths
            informed |= values[:, j] != 0
    if not informed.any():
        return token_keys
    rows = np.flatnonzero(informed)
    # each id mixed with its place in the bag, summed per bag (mod 2**64); the bags lie
    # in token order, so a token's entries are one run
    bags = np.zeros(n, dtype=np.uint64)
    filled = np.flatnonzero(sizes > 0)
    if len(filled):
        place = np.arange(len(know_ids), dtype=np.int64) - np.repeat(know_offsets, sizes)
        mixed = token_digests(np.column_stack([know_ids.astype(np.uint64), place.astype(np.uint64)])).view(np.uint64)
        bags[filled] = np.add.reduceat(mixed, know_offsets[filled])
    bits = [np.ascontiguousarray(a[rows], dtype=np.float32).view(np.uint32).astype(np.uint64)
            for a in (know_dense, expert_bias) if a.size]
    columns = np.column_stack([token_keys[rows].view(np.uint64), bags[rows], sizes[rows].astype(np.uint64), *bits])
    out = token_keys.copy()
    out[rows] = token_digests(columns)
    return out


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
        return self.from_keys(self.token_keys(docs), doc_lengths(docs))

    def token_keys(self, docs: Sequence[Doc]) -> np.ndarray:
        """(N, n_attrs) uint64: the attributes of every token of the batch (one
        ``to_array`` per doc)."""
        parts = [doc.to_array(self.attr_ids).reshape(len(doc), -1) for doc in docs if len(doc)]
        if not parts:
            return np.zeros((0, len(self.attr_ids)), dtype=np.uint64)
        return np.concatenate(parts).astype(np.uint64, copy=False)

    def from_keys(self, keys: np.ndarray, lengths: np.ndarray) -> Dict[str, object]:
        """The encoder's inputs from ``token_keys`` of docs with these lengths."""
        return {"hash_ids": self.hash_ids(keys), **self.packing(lengths)}

    def hash_ids(self, keys: np.ndarray) -> np.ndarray:
        """(N, n_attrs * n_hashes) int64 table rows of tokens with these ``token_keys``."""
        cols = []
        for j in range(len(self.attr_ids)):
            h = hash_keys(keys[:, j], self.seed + j, self.n_hashes).astype(np.uint64) % self.rows[j]
            cols.append(h.astype(np.int64) + self.offsets[j])
        return np.concatenate(cols, axis=1) if cols else np.zeros((keys.shape[0], 0), dtype=np.int64)

    def packing(self, lengths: np.ndarray) -> Dict[str, object]:
        """Where each token of docs with these lengths sits in the packed layout (gap
        rows before every document and after the last one): packed_pos, n_packed."""
        n = int(lengths.sum())
        gap = self.window
        starts = np.cumsum(np.concatenate([[gap], lengths + gap]))[:-1]
        packed_pos = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        packed_pos += np.repeat(starts, lengths)
        return {"packed_pos": packed_pos, "n_packed": int(n + gap * (len(lengths) + 1))}


class LazyHashIds:
    """A batch's hashed ids, made for the tokens asked for when they are asked for: the
    ``hash_ids_of`` that stands for ``hash_ids`` in the encoder inputs of a model that
    predicts from its token cache, which needs them only for the tokens it has not
    cached (on the BBC test set most tokens are found, and hashing every token cost as
    much as the rest of the cached model's inputs).

    Called with (m,) int64 positions it gives their (m, C) rows; with None, every
    token's. ``hashed`` counts the tokens hashed so far."""

    def __init__(self, featurizer: HashFeaturizer, keys: np.ndarray) -> None:
        self.featurizer = featurizer
        self.keys = keys
        self.hashed = 0

    def __call__(self, positions: Optional[np.ndarray]) -> np.ndarray:
        keys = self.keys if positions is None else self.keys[positions]
        self.hashed += keys.shape[0]
        return self.featurizer.hash_ids(keys)


def window_starts(n_pieces: int, window: int, stride: int) -> List[int]:
    """First piece of each window over ``n_pieces`` pieces: every ``stride`` pieces, the
    last one moved back so that it ends with the document (all windows are full)."""
    if n_pieces <= window:
        return [0]
    return list(range(0, n_pieces - window, stride)) + [n_pieces - window]


def window_owners(starts: Sequence[int], window: int, n_pieces: int) -> np.ndarray:
    """(n_windows + 1,) bounds: window i owns pieces [bounds[i], bounds[i+1]).

    Each piece is read from the window whose centre is nearest to it, i.e. where it
    has the most context on both sides; the bound between two overlapping windows is
    the midpoint of their centres, which lies inside both (stride <= window)."""
    starts_arr = np.asarray(starts, dtype=np.int64)
    mids = (starts_arr[:-1] + starts_arr[1:] + window) // 2
    return np.concatenate([[0], mids, [n_pieces]]).astype(np.int64)


class PieceFeaturizer:
    """Word pieces in overlapping windows for :class:`~.torch.encoder.TransformerEncoder`.

    source: a :class:`~.transformer_files.TransformerSource` (gives the fast tokenizer,
        whose ``word_ids`` align pieces to spaCy tokens; read when first needed).
    max_length (int): pieces per window, the special pieces included.
    stride (int): pieces between the starts of consecutive windows; stride < the
        window's content pieces makes them overlap. No document is truncated: a long
        one gets as many windows as it needs.
    cache (Optional[VectorCache]): the frozen encoder's per-document vectors; documents
        found there get no windows (``cached``), and ``doc_keys`` name every document.
    """

    def __init__(self, source: Any, *, max_length: int = 256, stride: int = 192,
                 cache: Optional[Any] = None) -> None:
        self.source = source
        self.max_length = max_length
        self.stride = stride
        self.cache = cache if cache is not None and cache.enabled else None
        self._template: Optional[Tuple[List[int], List[int], int]] = None

    @property
    def tokenizer(self) -> Any:
        return self.source.tokenizer

    def template(self) -> Tuple[List[int], List[int], int]:
        """(special pieces before the content, after it, padding id) of one sequence,
        read off the tokenizer's own output for one word: no per-model table."""
        if self._template is None:
            tok = self.tokenizer
            enc = tok(["x"], is_split_into_words=True)
            ids, word_ids = list(enc["input_ids"]), enc.word_ids()
            content = [i for i, w in enumerate(word_ids) if w is not None]
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            self._template = (ids[: content[0]], ids[content[-1] + 1:], int(pad))
            self.source.check_window(self.max_length, self.stride, len(ids) - len(content))
        return self._template

    @property
    def window(self) -> int:
        """Content pieces per window."""
        prefix, suffix, _ = self.template()
        return self.max_length - len(prefix) - len(suffix)

    def __call__(self, docs: Sequence[Doc]) -> Dict[str, object]:
        prefix, suffix, pad = self.template()
        window = self.window
        lengths = doc_lengths(docs)
        starts = (np.cumsum(lengths) - lengths).astype(np.int64)
        n_tokens = int(lengths.sum())
        words = [[t.text if t.text.strip() else "" for t in doc] for doc in docs]
        keys = [doc_key(w) for w in words] if self.cache is not None else None
        cached = np.array([k in self.cache for k in keys], dtype=bool) if keys is not None else np.zeros(
            len(docs), dtype=bool)
        todo = [i for i in range(len(docs)) if not cached[i] and any(words[i])]
        seqs: List[List[int]] = []
        targets: List[np.ndarray] = []
        if todo:
            enc = self.tokenizer([words[i] for i in todo], is_split_into_words=True, add_special_tokens=False,
                                 verbose=False)
            for j, i in enumerate(todo):
                ids = np.asarray(enc["input_ids"][j], dtype=np.int64)
                if not len(ids):  # e.g. only characters the tokenizer drops
                    continue
                rows = np.asarray([n_tokens if w is None else starts[i] + w for w in enc.word_ids(j)],
                                  dtype=np.int64)
                win_starts = window_starts(len(ids), window, self.stride)
                bounds = window_owners(win_starts, window, len(ids))
                for k, ws in enumerate(win_starts):
                    content = ids[ws: ws + window]
                    target = np.full(len(content), n_tokens, dtype=np.int64)
                    own = slice(bounds[k] - ws, bounds[k + 1] - ws)
                    target[own] = rows[bounds[k]: bounds[k + 1]]
                    seqs.append(prefix + content.tolist() + suffix)
                    targets.append(np.concatenate([np.full(len(prefix), n_tokens), target,
                                                   np.full(len(suffix), n_tokens)]).astype(np.int64))
        width = max((len(s) for s in seqs), default=1)
        input_ids = np.full((len(seqs), width), pad, dtype=np.int64)
        attention_mask = np.zeros((len(seqs), width), dtype=np.int64)
        piece_token = np.full((len(seqs), width), n_tokens, dtype=np.int64)
        for s, (seq, target) in enumerate(zip(seqs, targets)):
            input_ids[s, : len(seq)] = seq
            attention_mask[s, : len(seq)] = 1
            piece_token[s, : len(seq)] = target
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "piece_token": piece_token,
            "n_tokens": n_tokens,
            "doc_starts": starts,
            "doc_lengths": lengths,
            "doc_keys": keys,
            "cached": cached,
        }


def doc_key(words: Sequence[str]) -> str:
    """A document's cache key: a digest of exactly what the tokenizer reads (its token
    texts, whitespace tokens as ""), so re-tokenised text never hits old vectors."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update("\x1f".join(words).encode("utf8", "surrogatepass"))
    digest.update(str(len(words)).encode())
    return digest.hexdigest()


def bow_features(docs: Sequence[Doc], rows: int, *, ngram_size: int = 2, seed: int = 97,
                 norms: Optional[np.ndarray] = None,
                 knowledge_words: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 words_weight: float = 0.0) -> Dict[str, np.ndarray]:
    """Hashed bag of 1..ngram_size-grams over NORM, one bag per document.

    Each document's distinct n-grams count once (weight 1: a binary bag; the model
    multiplies by its idf and L2-normalises). RETURNS ids (M,), offsets (B,),
    weights (M,) float32. The n-grams of the whole batch are built at once and made
    distinct per document with one sort (per document: ordered by n-gram key).
    norms (Optional[np.ndarray]): the batch's NORM column (uint64, all tokens), if the
    caller has read it already.
    knowledge_words (Optional[Tuple[np.ndarray, np.ndarray]]): (indptr (B + 1,), NORM
        keys) of the words the KB gives each doc (its linked entities' descriptions,
        features/entity_words.py): added to the doc's bag as unigrams of weight
        ``words_weight`` (> 0), after the doc's own n-grams. A word both in the text and
        in a description is in the bag twice (1 + words_weight once summed). Adds
        ``bow_knowledge`` (M,) bool: which entries are the KB's.
    """
    lengths = doc_lengths(docs)
    if norms is None:
        parts = [doc.to_array(ATTR_IDS["NORM"]) for doc in docs if len(doc)]
        norms = np.concatenate(parts).astype(np.uint64, copy=False) if parts else np.zeros(0, np.uint64)
    owner = doc_index(lengths)
    # tokens from each one to the end of its document: an n-gram never crosses documents
    left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(norms), dtype=np.int64)
    grams, gram_docs = [norms], [owner]
    for n in range(2, ngram_size + 1):
        if len(norms) >= n:
            count = len(norms) - n + 1
            key = norms[:count].copy()
            for j in range(1, n):
                key = key * _BIGRAM_MIX ^ norms[j : count + j]
            inside = left[:count] >= n
            grams.append(key[inside] + np.uint64(n))
            gram_docs.append(owner[:count][inside])
    keys, key_docs = np.concatenate(grams), np.concatenate(gram_docs)
    # by document, then by key: an unstable sort of the keys, then a stable one of the
    # documents (small ints: numpy's radix sort), ~4x faster than np.lexsort here
    order = np.argsort(keys)
    narrow = np.uint16 if len(docs) <= np.iinfo(np.uint16).max else np.int64
    order = order[np.argsort(key_docs[order].astype(narrow), kind="stable")]
    keys, key_docs = keys[order], key_docs[order]
    distinct = np.ones(len(keys), dtype=np.bool_)
    distinct[1:] = (keys[1:] != keys[:-1]) | (key_docs[1:] != key_docs[:-1])
    keys, key_docs = keys[distinct], key_docs[distinct]
    counts = np.bincount(key_docs, minlength=len(docs)).astype(np.int64)
    weights = np.ones(len(keys), dtype=np.float32)
    out: Dict[str, np.ndarray] = {}
    if knowledge_words is not None and words_weight > 0.0 and len(knowledge_words[1]):
        w_indptr, w_keys = knowledge_words
        w_counts = np.diff(w_indptr).astype(np.int64)
        w_docs = np.repeat(np.arange(len(docs), dtype=np.int64), w_counts)
        # each doc's own n-grams, then its KB words: one stable sort by doc
        order = np.argsort(np.concatenate([key_docs, w_docs]), kind="stable")
        keys = np.concatenate([keys, w_keys.astype(np.uint64, copy=False)])[order]
        weights = np.concatenate([weights, np.full(len(w_keys), words_weight, dtype=np.float32)])[order]
        out["bow_knowledge"] = (order >= len(key_docs))
        counts = counts + w_counts
    ids = (hash_keys(keys, seed, 1)[:, 0].astype(np.uint64) % np.uint64(max(rows, 1))).astype(np.int64)
    offsets = (np.cumsum(counts) - counts).astype(np.int64)
    out.update({"bow_ids": ids, "bow_offsets": offsets, "bow_weights": weights})
    return out


def knowledge_features(
    dks: Sequence[object], lengths: np.ndarray, *, n_dense: int, n_experts: int, n_labels: int
) -> Dict[str, np.ndarray]:
    """Concatenate per-document ``DocKnowledge`` into the flat layout (a ``KnowledgeBatch``,
    which the featurizer's ``pipe`` returns, is in it already).

    RETURNS know_ids (K,), know_offsets (N,) (one bag per token), know_dense (N, n_dense),
    expert_bias (N, E), label_bias (B, L).
    """
    n = int(lengths.sum())
    if not len(dks):
        return _no_knowledge(n, len(lengths), n_dense=n_dense, n_experts=n_experts, n_labels=n_labels)
    flat = getattr(dks, "flat_inputs", None)
    if flat is not None:  # a KnowledgeBatch: already the flat layout, nothing to copy
        return flat()
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


def _knowledge_words(dks: Sequence[object]) -> Tuple[np.ndarray, np.ndarray]:
    """(indptr, keys) of the docs' description words (``DocKnowledge.words``)."""
    flat = getattr(dks, "doc_words", None)
    if flat is not None:  # a KnowledgeBatch holds them flat
        return flat()
    parts = [np.asarray(getattr(dk, "words", ()), dtype=np.uint64) for dk in dks]
    indptr = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=indptr[1:])
    return indptr, (np.concatenate(parts) if parts else np.zeros(0, np.uint64))


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
    words_weight: float = 0.0,
    lazy_hash_ids: bool = False,
) -> Dict[str, object]:
    """Everything the classifier's ``forward`` takes, as numpy (and two ints).
    ``knowledge``: one ``DocKnowledge`` per doc, or empty for no knowledge inputs.
    ``words_weight``: the weight of the KB's words in each doc's bag of n-grams (the
    model setting ``knowledge_words``; 0: none). ``lazy_hash_ids``: for a model that
    predicts from its token cache: a HashFeaturizer's ids as a :class:`LazyHashIds`
    (``enc["hash_ids_of"]``), and, where some token has knowledge inputs, the cache's
    keys of the tokens' states with their knowledge (``knowledge_keys``, see
    :func:`knowledge_digests`)."""
    lengths = doc_lengths(docs)
    norms: Optional[np.ndarray] = None
    inputs: Dict[str, object] = {"doc_index": doc_index(lengths), "n_docs": len(docs)}
    if isinstance(token_featurizer, HashFeaturizer):
        # one to_array per doc serves the hashed ids, the cache keys and the n-gram bags
        keys = token_featurizer.token_keys(docs)
        enc: Dict[str, object] = token_featurizer.packing(lengths)
        if lazy_hash_ids:
            enc["hash_ids_of"] = LazyHashIds(token_featurizer, keys)
        else:
            enc["hash_ids"] = token_featurizer.hash_ids(keys)
        inputs["token_keys"] = token_digests(keys)
        if "NORM" in token_featurizer.attrs:
            norms = np.ascontiguousarray(keys[:, token_featurizer.attrs.index("NORM")])
    else:
        enc = token_featurizer(docs)
    inputs["enc"] = enc
    words = _knowledge_words(knowledge) if words_weight > 0.0 and len(knowledge) else None
    inputs.update(bow_features(docs, bow_rows, ngram_size=ngram_size, norms=norms, knowledge_words=words,
                               words_weight=words_weight))
    inputs.update(knowledge_features(knowledge, lengths, n_dense=n_dense, n_experts=n_experts, n_labels=n_labels))
    if lazy_hash_ids and "token_keys" in inputs:
        keys = knowledge_digests(inputs["token_keys"], inputs["know_ids"], inputs["know_offsets"],
                                 inputs["know_dense"], inputs["expert_bias"])
        if keys is not inputs["token_keys"]:  # only where some token has knowledge: the
            inputs["knowledge_keys"] = keys  # forward then computes its misses with it
    return inputs


def bow_doc_freq(docs: Sequence[Doc], rows: int, *, ngram_size: int = 2) -> np.ndarray:
    """(rows,) number of docs that contain each hashed n-gram."""
    ids = bow_features(docs, rows, ngram_size=ngram_size)["bow_ids"]
    return np.bincount(ids, minlength=rows).astype(np.float32)


__all__ = ["HashFeaturizer", "LazyHashIds", "bow_doc_freq", "PieceFeaturizer", "bow_features", "doc_key",
           "featurize_batch", "knowledge_digests", "knowledge_features", "token_digests", "window_owners",
           "window_starts"]
