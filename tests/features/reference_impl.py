"""The plain reference the fast knowledge path is checked against (and timed against in
benchmarks/knowledge_profile.py): per doc, per hit, per token, in Python.

- Rule hits: phrase rules through spaCy's PhraseMatcher (LOWER, or ORTH when case
  sensitive); every bounded token pattern of a rule through one spaCy Matcher on the whole
  doc (its every match); an unbounded pattern through spaCy's Matcher too, then per start
  the longest match of at most `max_length` tokens and, from the left, the matches that
  begin after the previous one ended; kb_type / kb_relation rules by testing each linked
  entity's full type / predicate lists. Then per rule the first `max_matches_per_rule`.
- Features: a set of ids per token, dense rows and expert biases filled token by token,
  weights taken from the rule records (not from the fast matcher's matrices).

Only the linker is shared with the fast path (it is checked on its own elsewhere).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from spacy_sparse_expert.features.disambiguation import LinkResult
from spacy_sparse_expert.features.features import DocKnowledge, KnowledgeFeaturizer
from spacy_sparse_expert.features.linker import blank_tokenizer
from spacy_sparse_expert.rules.pattern_bounds import unbounded_reason

Hit = Tuple[str, int, int]  # (rule id, start, end)


class ReferenceKnowledge:
    """The knowledge features of `featurizer` (same KB, rules, labels, linker), computed
    the plain way."""

    def __init__(self, featurizer: KnowledgeFeaturizer) -> None:
        self.f = featurizer
        vocab = featurizer.vocab
        rm = featurizer.rule_matcher
        self.rules = list(rm.rules) if rm is not None else []
        self.max_length = rm.patterns.max_length if rm is not None else 32
        self.max_hits = rm.max_matches_per_rule if rm is not None else 10_000
        make_doc = blank_tokenizer(vocab)
        self.lower = PhraseMatcher(vocab, attr="LOWER")
        self.cased = PhraseMatcher(vocab, attr="ORTH")
        self.bounded = Matcher(vocab)
        self.unbounded: List[Tuple[str, Matcher]] = []
        kb = featurizer.kb
        self.kb_rules: List[Tuple[str, str, int]] = []  # (rule id, "type" | "pred", type / predicate id)
        for rule in self.rules:
            kind = rule.kind
            if kind == "phrase":
                (self.cased if rule.case_sensitive else self.lower).add(rule.id, [make_doc(t) for t in rule.phrases])
            elif kind == "pattern":
                bounded = [list(p) for p in rule.patterns if unbounded_reason(list(p)) is None]
                if bounded:
                    self.bounded.add(rule.id, bounded)
                for p in rule.patterns:
                    if unbounded_reason(list(p)) is not None:
                        m = Matcher(vocab)
                        m.add(rule.id, [list(p)])
                        self.unbounded.append((rule.id, m))
            elif kind == "kb_type" and kb is not None and kb.get_type_id(rule.target) is not None:
                self.kb_rules.append((rule.id, "type", int(kb.get_type_id(rule.target))))
            elif kind == "kb_relation" and kb is not None and kb.get_predicate_id(rule.target) is not None:
                self.kb_rules.append((rule.id, "pred", int(kb.get_predicate_id(rule.target))))
        self.row = {rule.id: i for i, rule in enumerate(self.rules)}

    # --- rule hits ---------------------------------------------------------------------

    def token_hits(self, doc: Doc) -> List[Hit]:
        if not len(doc):
            return []
        strings = doc.vocab.strings
        hits: List[Hit] = []
        for m in (self.lower, self.cased, self.bounded):
            if len(m):
                hits += [(strings[k], s, e) for k, s, e in m(doc)]
        for rule_id, m in self.unbounded:
            longest: Dict[int, int] = {}
            for _, s, e in m(doc):
                if e - s <= self.max_length:
                    longest[s] = max(longest.get(s, 0), e - s)
            end = 0
            for s in sorted(longest):
                if s >= end:
                    end = s + longest[s]
                    hits.append((rule_id, s, end))
        # per rule, the first max_hits in doc order
        kept: List[Hit] = []
        seen: Dict[str, int] = {}
        for h in sorted(hits, key=lambda h: (h[1], h[2], self.row[h[0]])):
            seen[h[0]] = seen.get(h[0], 0) + 1
            if seen[h[0]] <= self.max_hits:
                kept.append(h)
        return kept

    def entity_hits(self, link: LinkResult) -> List[Hit]:
        kb = self.f.kb
        if kb is None:
            return []
        arrays = kb.entity_arrays
        hits: List[Hit] = []
        for ent, s, e in zip(link.entities.tolist(), link.starts.tolist(), link.ends.tolist()):
            types = set(arrays.types[arrays.types_indptr[ent]: arrays.types_indptr[ent + 1]].tolist())
            preds = set(arrays.preds[arrays.preds_indptr[ent]: arrays.preds_indptr[ent + 1]].tolist())
            for rule_id, what, target in self.kb_rules:
                if target in (types if what == "type" else preds):
                    hits.append((rule_id, s, e))
        return hits

    # --- features ----------------------------------------------------------------------

    def __call__(self, doc: Doc) -> Tuple[DocKnowledge, List[Hit], LinkResult]:
        """RETURNS (features, rule hits, links) of one doc."""
        link = self.f.linker(doc) if self.f.linker is not None and len(doc) else LinkResult.empty()
        hits = self.token_hits(doc) + self.entity_hits(link)
        return self.features(len(doc), link, hits), hits, link

    def features(self, n: int, link: LinkResult, hits: List[Hit]) -> DocKnowledge:
        """The arrays of a doc of `n` tokens from its links and rule hits."""
        f = self.f
        ids: List[Set[int]] = [set() for _ in range(n)]
        dense = np.zeros((n, f.n_dense), dtype=np.float32)
        expert_bias = np.zeros((n, f.n_experts), dtype=np.float32)
        label_bias = np.zeros((len(f.labels),), dtype=np.float32)
        linked = np.zeros((n,), dtype=np.bool_)
        flag = f.n_ids - 5  # linked, begin, ambiguous, lowercase, rule
        kb = f.kb
        for ent, s, e, prior, n_cand, low in zip(link.entities.tolist(), link.starts.tolist(), link.ends.tolist(),
                                                link.priors.tolist(), link.n_candidates.tolist(),
                                                link.lowercase.tolist()):
            assert kb is not None
            a = kb.entity_arrays
            types = a.types[a.types_indptr[ent]: a.types_indptr[ent + 1]].tolist()[: f.max_types_per_entity]
            preds = a.preds[a.preds_indptr[ent]: a.preds_indptr[ent + 1]].tolist()
            for t in range(s, e):
                ids[t].update(types)
                ids[t].update(f.n_types + p for p in preds)
                ids[t].add(flag)
                if n_cand > 1:
                    ids[t].add(flag + 2)
                if low:
                    ids[t].add(flag + 3)
                if f.n_features:
                    dense[t, : f.n_features] = a.features[ent]
                dense[t, f.n_features] = 1.0
                dense[t, f.n_features + 1] = prior
                linked[t] = True
            ids[s].add(flag + 1)
        weights = {r.id: (float(r.weight), dict(r.experts), dict(r.labels)) for r in self.rules}
        pairs: Set[Tuple[int, int]] = set()
        for rule_id, s, e in hits:
            w, experts, labels = weights[rule_id]
            for lab, v in labels.items():
                if lab in f.labels:
                    label_bias[f.labels.index(lab)] += np.float32(w * float(v))
            pairs.update((t, self.row[rule_id]) for t in range(s, e))
        rule_offset = f.n_types + f.n_predicates
        for t, row in sorted(pairs):
            w, experts, _ = weights[self.rules[row].id]
            for x, v in experts.items():
                expert_bias[t, int(x)] += np.float32(w * float(v))
            ids[t].update((rule_offset + row, flag + 4))
            linked[t] = True
        counts = [len(s) for s in ids]
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = np.array([i for s in ids for i in sorted(s)], dtype=np.int64)
        return DocKnowledge(indptr, flat, dense, expert_bias, label_bias, linked)


def cats_from_knowledge(model: Any, docs: Sequence[Doc], knowledge: Sequence[DocKnowledge]) -> np.ndarray:
    """The model's scores for `docs` given these knowledge features (inference mode)."""
    import torch

    from spacy_sparse_expert.ml.inputs import build_inputs

    inputs = build_inputs(model, docs, knowledge=knowledge)
    torch_layer, activation = model.layers
    with torch.inference_mode():
        out, _ = torch_layer(inputs, False)
    scores, _ = activation(out.logits, False)
    return np.asarray(scores)


def bow_features_per_doc(docs: Sequence[Doc], rows: int, *, ngram_size: int = 2, seed: int = 97) -> dict:
    """The n-gram bags document by document (np.unique per document)."""
    from spacy.attrs import NORM

    from spacy_sparse_expert.ml.featurize import hash_keys

    mix = np.uint64(0x9E3779B97F4A7C15)
    ids_per_doc = []
    for doc in docs:
        norms = doc.to_array(NORM).astype(np.uint64) if len(doc) else np.zeros(0, np.uint64)
        grams = [norms]
        for n in range(2, ngram_size + 1):
            if len(norms) >= n:
                key = norms[: len(norms) - n + 1].copy()
                for j in range(1, n):
                    key = key * mix ^ norms[j: len(norms) - n + 1 + j]
                grams.append(key + np.uint64(n))
        ids_per_doc.append(np.unique(np.concatenate(grams)))
    counts = np.array([len(x) for x in ids_per_doc], dtype=np.int64)
    keys = np.concatenate(ids_per_doc) if ids_per_doc else np.zeros(0, np.uint64)
    ids = (hash_keys(keys, seed, 1)[:, 0].astype(np.uint64) % np.uint64(max(rows, 1))).astype(np.int64)
    return {"bow_ids": ids, "bow_offsets": (np.cumsum(counts) - counts).astype(np.int64),
            "bow_weights": np.ones(len(ids), dtype=np.float32)}
