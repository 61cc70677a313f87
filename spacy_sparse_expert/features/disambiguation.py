"""Disambiguation: one KB entity for each alias mention, by prior and document context.

The linker (`linker.py`) finds the mentions and their candidates; this module chooses.
Confidently linked mentions (a single candidate, or a high prior) make the document's
context: the IDF-weighted types and predicates of their entities, and the entities
themselves. Every ambiguous mention is re-ranked by prior + context similarity (more for a
KB edge to a context entity); a very ambiguous alias without context support is dropped.
"""
from __future__ import annotations

from collections import Counter
from itertools import chain
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from ..kb.hierarchy import DEFAULT_MAX_TYPES_PER_ENTITY

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.views import EntityArrays
    from .linker import LinkerConfig

# One alias mention: (token start, token end, (candidate entity rows, priors) highest
# prior first, written without capitals).
Mention = Tuple[int, int, Tuple[np.ndarray, np.ndarray], bool]


@dataclass
class LinkResult:
    """Linked mentions of one doc, sorted by start. Arrays of length n_mentions."""

    starts: np.ndarray              # int64 token start
    ends: np.ndarray                # int64 token end (exclusive)
    entities: np.ndarray            # int64 entity row in the KB
    priors: np.ndarray              # float32 prior of the chosen entity for the alias
    n_candidates: np.ndarray        # int64 number of candidates the alias had
    lowercase: np.ndarray           # bool: written without capitals (a concept reading)

    @classmethod
    def empty(cls) -> "LinkResult":
        z = np.zeros((0,), dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros((0,), dtype=np.float32), z.copy(), np.zeros((0,), dtype=bool))


class ContextDisambiguator:
    """Choose among the candidates of a doc's mentions by prior and document context.

    arrays (EntityArrays): the KB's per-entity arrays (types, predicates, neighbours, IDF).
    config (LinkerConfig): the disambiguation thresholds (confident_prior, context_weight,
        max_flat_candidates, flat_prior, min_context_support, min_margin, neighbour_weight).
    Entity signatures are cached, so one disambiguator serves every doc of a linker.
    """

    def __init__(self, arrays: "EntityArrays", config: "LinkerConfig") -> None:
        self.cfg = config
        self._arrays = arrays
        self._sig_cache: Dict[int, Dict[int, float]] = {}
        self._total_cache: Dict[int, float] = {}  # sum of each cached signature's weights
        self._nbr_cache: Dict[int, FrozenSet[int]] = {}  # each entity's KB neighbours

    def __call__(self, mentions: List[Mention]) -> LinkResult:
        """The chosen entity of each mention that is linked (`mentions`: non-overlapping,
        sorted by start), with its prior and number of candidates."""
        cfg = self.cfg
        # Context profile: types and predicates of the confidently linked entities
        # (a single candidate, or a prior of at least confident_prior). The thresholds
        # are compared over all mentions at once, in float32 as the priors are.
        sizes = [len(m[2][0]) for m in mentions]
        best_pri = np.array([m[2][1][0] for m in mentions], dtype=np.float32)
        sure = ((np.array(sizes) == 1) | (best_pri >= cfg.confident_prior)).tolist()
        flats = ((np.array(sizes) > cfg.max_flat_candidates) & (best_pri < cfg.flat_prior)).tolist()
        tops: List[Optional[int]] = [int(m[2][0][0]) if ok else None for m, ok in zip(mentions, sure)]
        ctx_entities: Counter = Counter(top for top in tops if top is not None)
        ctx_counts: Counter = Counter()
        if ctx_entities and max(sizes) > 1:  # only a re-ranked mention reads the profile
            ctx_counts = Counter(chain.from_iterable(self._signature(top).keys() for top in tops if top is not None))
        chosen: List[int] = []
        prior: List[float] = []
        kept: List[int] = []
        n_cands: List[int] = []
        for j, (_, _, (ents, pri), _) in enumerate(mentions):
            flat = flats[j]
            if sizes[j] == 1 or not ctx_entities:
                if not flat:  # else nothing to disambiguate a very ambiguous alias with
                    chosen.append(int(ents[0]))
                    prior.append(float(pri[0]))
                    kept.append(j)
                    n_cands.append(len(ents))
                continue
            # Re-rank every ambiguous mention (confident ones too) by prior + context;
            # a confident mention's own contribution to the context is left out.
            own = tops[j]
            best, best_score, best_sim, second = 0, -1.0, 0.0, -1.0
            for k, ent in enumerate(ents.tolist()):
                sim = self._context_similarity(ent, ctx_counts, own=own)
                if cfg.neighbour_weight and self._linked_nearby(ent, ctx_entities, own):
                    sim += cfg.neighbour_weight
                score = float(pri[k]) + cfg.context_weight * sim
                if score > best_score:
                    best, best_score, best_sim, second = k, score, sim, best_score
                elif score > second:
                    second = score
            if flat and (best_sim < cfg.min_context_support or best_score - second < cfg.min_margin):
                continue
            chosen.append(int(ents[best]))
            prior.append(float(pri[best]))
            kept.append(j)
            n_cands.append(len(ents))
        starts = [mentions[j][0] for j in kept]
        ends = [mentions[j][1] for j in kept]
        return LinkResult(
            np.array(starts, dtype=np.int64),
            np.array(ends, dtype=np.int64),
            np.array(chosen, dtype=np.int64),
            np.array(prior, dtype=np.float32),
            np.array(n_cands, dtype=np.int64),
            np.array([mentions[j][3] for j in kept], dtype=bool),
        )

    def batch(self, docs_mentions: Sequence[List[Mention]]) -> List[LinkResult]:
        """`__call__` for every doc of a batch (one mention list per doc, empty lists
        allowed), the same links. The thresholds are compared over the batch's mentions at
        once; a doc none of whose mentions is re-ranked by context (no confident mention,
        or no ambiguous one: most short texts) is decided by arrays, and only docs with a
        mention to re-rank run `__call__`."""
        out: List[Optional[LinkResult]] = [None] * len(docs_mentions)
        flat = [m for ms in docs_mentions for m in ms]
        if not flat:
            return [LinkResult.empty() for _ in docs_mentions]
        cfg = self.cfg
        counts = np.fromiter((len(ms) for ms in docs_mentions), dtype=np.int64, count=len(docs_mentions))
        doc_of = np.repeat(np.arange(len(docs_mentions)), counts)
        sizes = np.fromiter((len(m[2][0]) for m in flat), dtype=np.int64, count=len(flat))
        best_pri = np.array([m[2][1][0] for m in flat], dtype=np.float32)
        sure = (sizes == 1) | (best_pri >= cfg.confident_prior)
        flats = (sizes > cfg.max_flat_candidates) & (best_pri < cfg.flat_prior)
        has_ctx = np.bincount(doc_of, weights=sure, minlength=len(docs_mentions)) > 0
        rerank = np.bincount(doc_of, weights=(sizes > 1) & has_ctx[doc_of], minlength=len(docs_mentions)) > 0
        for d in np.flatnonzero(rerank).tolist():
            out[d] = self(docs_mentions[d])
        # the other docs: every mention's first candidate, unless it is flat
        keep = np.flatnonzero(~flats & ~rerank[doc_of])
        if len(keep):
            kept = [flat[j] for j in keep.tolist()]
            starts = np.fromiter((m[0] for m in kept), dtype=np.int64, count=len(kept))
            ends = np.fromiter((m[1] for m in kept), dtype=np.int64, count=len(kept))
            ents = np.fromiter((m[2][0][0] for m in kept), dtype=np.int64, count=len(kept))
            lower = np.fromiter((m[3] for m in kept), dtype=bool, count=len(kept))
            bounds = np.searchsorted(doc_of[keep], np.arange(len(docs_mentions) + 1)).tolist()
            for d in np.unique(doc_of[keep]).tolist():
                a, b = bounds[d], bounds[d + 1]
                out[d] = LinkResult(starts[a:b], ends[a:b], ents[a:b], best_pri[keep[a:b]], sizes[keep[a:b]],
                                    lower[a:b])
        return [LinkResult.empty() if r is None else r for r in out]

    def _signature(self, ent: int) -> Dict[int, float]:
        """An entity's context signature: its type ids and (negated) predicate ids, each
        weighted by IDF so that rare, specific types ("football club") count more than
        generic ones ("location")."""
        got = self._sig_cache.get(ent)
        if got is None:
            a = self._arrays
            # the nearest types only: a deep hierarchy would make every mention cost its depth
            begin = int(a.types_indptr[ent])
            ts = a.types[begin : min(int(a.types_indptr[ent + 1]), begin + DEFAULT_MAX_TYPES_PER_ENTITY)]
            ps = a.preds[a.preds_indptr[ent] : a.preds_indptr[ent + 1]]
            got = dict(zip(ts.tolist(), a.type_idf[ts].tolist()))
            got.update(zip((-1 - ps).tolist(), a.pred_idf[ps].tolist()))
            self._sig_cache[ent] = got
        return got

    def _context_similarity(self, ent: int, ctx: Dict[int, int], own: Optional[int]) -> float:
        """IDF-weighted fraction of the candidate's signature that other confidently
        linked entities of the doc share (0..1)."""
        sig = self._signature(ent)
        total = self._total_cache.get(ent)
        if total is None:
            total = self._total_cache[ent] = sum(sig.values())
        if not ctx or total <= 0.0:
            return 0.0
        own_sig = self._signature(own) if own is not None else {}
        hit = sum(w for f, w in sig.items() if ctx.get(f, 0) - (f in own_sig) > 0)
        return hit / total

    def _linked_nearby(self, ent: int, ctx_entities: Counter, own: Optional[int]) -> bool:
        """Direct evidence for a candidate: the same entity is linked confidently
        elsewhere in the doc ("England cricket team ... England"), or a KB edge joins it
        to a confidently linked entity ("Chelsea F.C." -homeGround-> "Stamford Bridge"),
        not counting the mention's own confident link."""
        if ctx_entities.get(ent, 0) - (ent == own) > 0:
            return True
        nb = self._nbr_cache.get(ent)
        if nb is None:
            a = self._arrays
            nb = self._nbr_cache[ent] = frozenset(a.nbrs[a.nbr_indptr[ent] : a.nbr_indptr[ent + 1]].tolist())
        # a set intersection walks the smaller side: the doc's few context entities
        return any(x != ent and ctx_entities[x] - (x == own) > 0 for x in nb.intersection(ctx_entities))


__all__ = ["ContextDisambiguator", "LinkResult", "Mention"]
