"""Rule hits in docs: phrase rules through one hash index (`PhraseIndex`: LOWER, or ORTH
for case-sensitive rules), token-pattern rules through `BoundedPatterns` over the whole batch,
kb_type / kb_relation rules on linked entities.

Every rule has a row in two small matrices built once: `expert_weights` (n_rules,
n_experts) = weight * experts and `label_weights` (n_rules, n_labels) = weight * labels,
so the per-doc work is matching plus a few numpy gathers.

The work per rule and doc is bounded: bounded token patterns give every match, as spaCy's
Matcher does, but their token tests run once per distinct word and the operators as an
array NFA over the batch; patterns with `+`, `*` or wide ranges give leftmost-longest,
non-overlapping matches of at most `max_match_length` tokens instead of spaCy's
quadratically many; and a rule keeps at most `max_matches_per_rule` hits per doc.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
from spacy.attrs import LOWER, ORTH
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..errors import Errors, SparseExpertError, Warnings
from .bounded_patterns import (
    DEFAULT_MAX_MATCH_LENGTH, DEFAULT_MAX_MATCHES_PER_RULE, BoundedPatterns, DocBatch, cap_per_key, doc_batch, unbounded_reason,
)
from .linker import blank_tokenizer
from .phrase_index import PhraseIndex
from .segments import segment_positions

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase
    from ..rules.rules import Rule, RuleSet

PHRASE, PATTERN, KB_TYPE, KB_RELATION = "phrase", "pattern", "kb_type", "kb_relation"


class RuleHits:
    """Rule hits of one doc: rule rows and token spans (arrays of length n_hits)."""

    __slots__ = ("rules", "starts", "ends")

    def __init__(self, rules: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.rules, self.starts, self.ends = rules, starts, ends

    def __len__(self) -> int:
        return len(self.rules)


class FlatHits(NamedTuple):
    """Rule hits of a batch: doc index, rule row, start and end within the doc (int64)."""

    docs: np.ndarray
    rules: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def empty(cls) -> "FlatHits":
        z = np.zeros((0,), dtype=np.int64)
        return cls(z, z, z, z)

    def per_doc(self, n_docs: int) -> List[RuleHits]:
        """One RuleHits (views) per doc; the hits must be sorted by doc."""
        bounds = np.searchsorted(self.docs, np.arange(n_docs + 1)).tolist()
        return [RuleHits(self.rules[b:e], self.starts[b:e], self.ends[b:e]) for b, e in zip(bounds[:-1], bounds[1:])]


class RuleMatcher:
    """Find rule hits in docs.

    vocab (Vocab): the pipeline's vocab.
    rules (RuleSet): the rules; their order gives the rule rows 0..n_rules-1.
    kb (Optional[KnowledgeBase]): needed for kb_type / kb_relation rules; without it
        those rules never fire.
    labels (Sequence[str]): the classifier's labels (columns of label_weights).
    n_experts (int): number of experts (columns of expert_weights).
    max_match_length (int): longest match, in tokens, of a pattern with `+`, `*` or a wide
        range (see bounded_patterns.py); a longer run gives several matches.
    max_matches_per_rule (int): hits of one rule in one doc beyond this are dropped (the
        first ones in doc order stay; warning W021).
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for phrase patterns; by default a
        blank tokenizer of `vocab.lang` sharing `vocab`.
    """

    def __init__(
        self,
        vocab: Vocab,
        rules: "RuleSet",
        kb: Optional["KnowledgeBase"],
        *,
        labels: Sequence[str],
        n_experts: int,
        max_match_length: int = DEFAULT_MAX_MATCH_LENGTH,
        max_matches_per_rule: int = DEFAULT_MAX_MATCHES_PER_RULE,
        make_doc: Optional[Callable[[str], Doc]] = None,
    ) -> None:
        for name, value in (("max_match_length", max_match_length), ("max_matches_per_rule", max_matches_per_rule)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SparseExpertError(Errors.E120.format(name=name, value=value))
        self.max_matches_per_rule = max_matches_per_rule
        self.rules: List["Rule"] = list(rules)
        self.ids: List[str] = [str(r.id) for r in self.rules]
        n = len(self.rules)
        label_index = {lab: i for i, lab in enumerate(labels)}
        self.expert_weights = np.zeros((n, n_experts), dtype=np.float32)
        self.label_weights = np.zeros((n, len(labels)), dtype=np.float32)
        # every token pattern, over whole batches (those with +, * or wide ranges greedily)
        self.patterns = BoundedPatterns(vocab, max_length=max_match_length)
        self._key2row: Dict[int, int] = {}
        self._strings = vocab.strings
        self._warned: Set[int] = set()  # rules W021 was raised for
        make_doc = blank_tokenizer(vocab) if make_doc is None else make_doc
        self.phrases = PhraseIndex(make_doc)  # phrase rules (LOWER, or ORTH if case-sensitive)
        n_types = kb.n_types if kb is not None else 0
        n_preds = kb.n_predicates if kb is not None else 0
        # kb_type / kb_relation rules as sparse (n_types, n_rules) / (n_preds, n_rules)
        # incidence lists, folded into an entity -> rules CSR below
        type_rule: List[Tuple[int, int]] = []
        pred_rule: List[Tuple[int, int]] = []
        for row, rule in enumerate(self.rules):
            w = float(rule.weight)
            for e, v in dict(rule.experts).items():
                if not 0 <= int(e) < n_experts:
                    raise SparseExpertError(Errors.E031.format(
                        index=e, rule=rule.id, n_experts=n_experts, max_index=n_experts - 1))
                self.expert_weights[row, int(e)] += w * float(v)
            for lab, v in dict(rule.labels).items():
                if lab in label_index:  # rules may name labels this model does not have
                    self.label_weights[row, label_index[lab]] += w * float(v)
            key = f"sse_rule::{rule.id}"
            key_hash = vocab.strings.add(key)
            self._key2row[key_hash] = row
            kind = rule.kind
            if kind == PHRASE:
                self.phrases.add(row, rule.phrases, case_sensitive=rule.case_sensitive)
            elif kind == PATTERN:
                for pattern in rule.patterns:
                    self.patterns.add(key_hash, list(pattern), every_match=unbounded_reason(list(pattern)) is None)
            elif kind == KB_TYPE and kb is not None:
                t = kb.get_type_id(rule.target)
                if t is not None:  # a type this KB lacks: the rule cannot fire
                    type_rule.append((t, row))
            elif kind == KB_RELATION and kb is not None:
                p = kb.get_predicate_id(rule.target)
                if p is not None:
                    pred_rule.append((p, row))
        self.n_rules = n
        self._key_hashes = np.fromiter(self._key2row, dtype=np.uint64, count=len(self._key2row))
        self._key_rows = np.fromiter(self._key2row.values(), dtype=np.int64, count=len(self._key2row))
        order = np.argsort(self._key_hashes)
        self._key_hashes, self._key_rows = self._key_hashes[order], self._key_rows[order]
        self.entity_rules: Optional[Tuple[np.ndarray, np.ndarray]] = None
        if kb is not None and (type_rule or pred_rule):
            self.entity_rules = _entity_rules(kb, type_rule, pred_rule, n_types, n_preds, n)

    def __len__(self) -> int:
        return self.n_rules

    def token_hits(self, doc: Doc) -> RuleHits:
        """Hits of phrase and pattern rules in one doc."""
        return self.token_hits_batch([doc])[0]

    def token_hits_batch(self, docs: Sequence[Doc]) -> List[RuleHits]:
        """Hits of phrase and pattern rules, one RuleHits per doc (sorted by start, end, rule)."""
        return self.token_hits_flat(docs).per_doc(len(docs))

    def token_hits_flat(self, docs: Sequence[Doc], batch: Optional[DocBatch] = None) -> "FlatHits":
        """Hits of phrase and pattern rules in a batch, flat and sorted by (doc, start, end,
        rule). Both kinds run once over the whole batch (`batch`: `doc_batch(docs)`, when
        the caller has it already)."""
        if not len(self.phrases) and not len(self.patterns) or not docs:
            return FlatHits.empty()
        batch = doc_batch(docs) if batch is None else batch
        p_doc, p_key, p_start, p_end = self.patterns.match(batch)
        ph_rows, ph_start, ph_end = self.phrases.match({ORTH: batch.orths, LOWER: batch.lowers}, batch.left)
        ph_doc = np.searchsorted(batch.offsets, ph_start, side="right") - 1
        ph_start, ph_end = ph_start - batch.offsets[ph_doc], ph_end - batch.offsets[ph_doc]
        doc_a = np.concatenate([p_doc, ph_doc])
        rows = np.concatenate([self._key_rows[np.searchsorted(self._key_hashes, p_key)], ph_rows])
        starts, ends = np.concatenate([p_start, ph_start]), np.concatenate([p_end, ph_end])
        order = np.lexsort((rows, ends, starts, doc_a))
        hits = FlatHits(doc_a[order], rows[order], starts[order], ends[order])
        # per (doc, rule), the first max_matches_per_rule in doc order
        keep = cap_per_key(hits.docs * max(self.n_rules, 1) + hits.rules, hits.starts, self.max_matches_per_rule)
        if len(keep) < len(hits.docs):
            self._warn_capped(hits, batch.lengths)
            hits = FlatHits(hits.docs[keep], hits.rules[keep], hits.starts[keep], hits.ends[keep])
        return hits

    def _warn_capped(self, hits: "FlatHits", lengths: np.ndarray) -> None:
        """W021, once per rule and matcher (a warning per doc would flood the log)."""
        n = max(self.n_rules, 1)
        counts = np.bincount(hits.docs * n + hits.rules)
        for pair in np.flatnonzero(counts > self.max_matches_per_rule).tolist():
            doc, row = divmod(pair, n)
            if row not in self._warned:
                self._warned.add(row)
                warnings.warn(Warnings.W021.format(rule=self.ids[row], count=int(counts[pair]),
                                                   tokens=int(lengths[doc]), limit=self.max_matches_per_rule),
                              stacklevel=4)

    def entity_hits_flat(self, entities: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                         docs: np.ndarray) -> "FlatHits":
        """Hits of kb_type / kb_relation rules on the linked spans of a batch (entity rows,
        spans, the doc of each span)."""
        if self.entity_rules is None or len(entities) == 0:
            return FlatHits.empty()
        indptr, rules = self.entity_rules
        counts, rows = csr_gather(indptr, rules, entities)
        return FlatHits(np.repeat(docs, counts), rows, np.repeat(starts, counts), np.repeat(ends, counts))

    def entity_hits(self, entities: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> RuleHits:
        """Hits of kb_type / kb_relation rules on linked spans (entity rows + spans)."""
        if self.entity_rules is None or len(entities) == 0:
            return _empty_hits()
        indptr, rules = self.entity_rules
        counts, rows = csr_gather(indptr, rules, entities)
        return RuleHits(rows, np.repeat(starts, counts), np.repeat(ends, counts))


def csr_gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray,
               limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate CSR rows `rows`, each cut to its first `limit` values (all if None):
    RETURNS (per-row counts, values), vectorised."""
    rows = np.asarray(rows, dtype=np.int64)
    begin = indptr[rows]
    counts = indptr[rows + 1] - begin
    if limit is not None:
        counts = np.minimum(counts, limit)
    if not counts.sum():
        return counts, np.zeros((0,), dtype=np.int64)
    return counts, np.asarray(indices[segment_positions(begin, counts)], dtype=np.int64)


def _entity_rules(
    kb: "KnowledgeBase",
    type_rule: List[Tuple[int, int]],
    pred_rule: List[Tuple[int, int]],
    n_types: int,
    n_preds: int,
    n_rules: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """entity -> rules CSR: entity_types @ type_rules + entity_predicates @ pred_rules."""
    import scipy.sparse as sp

    def incidence(pairs: List[Tuple[int, int]], n_rows: int) -> "sp.csr_matrix":
        data = np.ones(len(pairs), dtype=np.float32)
        r = np.array([p[0] for p in pairs], dtype=np.int64)
        c = np.array([p[1] for p in pairs], dtype=np.int64)
        return sp.csr_matrix((data, (r, c)), shape=(max(n_rows, 1), n_rules))

    n_ent = kb.n_entities
    arrays = kb.entity_arrays
    ti, tx = arrays.types_indptr, arrays.types
    pi, px = arrays.preds_indptr, arrays.preds
    et = sp.csr_matrix((np.ones(len(tx), dtype=np.float32), tx, ti), shape=(n_ent, max(n_types, 1)))
    ep = sp.csr_matrix((np.ones(len(px), dtype=np.float32), px, pi), shape=(n_ent, max(n_preds, 1)))
    m = (et @ incidence(type_rule, n_types) + ep @ incidence(pred_rule, n_preds)).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return np.asarray(m.indptr, dtype=np.int64), np.asarray(m.indices, dtype=np.int64)


def _empty_hits() -> RuleHits:
    z = np.zeros((0,), dtype=np.int64)
    return RuleHits(z, z.copy(), z.copy())


__all__ = ["FlatHits", "RuleMatcher", "RuleHits", "csr_gather"]
