"""Disambiguation: one KB entity for each alias mention, by prior and document context.

The linker (`linker.py`) finds the mentions and their candidates; this module chooses.
Confidently linked mentions (a single candidate, or a high prior) make the document's
context: the IDF-weighted types and predicates of their entities, and the entities
themselves. Every ambiguous mention is re-ranked by prior + context similarity (more for a
KB edge to a context entity); a very ambiguous alias without context support is dropped.

The whole batch is decided with array operations (`ContextDisambiguator.choose`): every
(mention, candidate) pair of a doc with something to re-rank is scored at once, its
signature entries looked up in the batch's (doc, feature) context counts: one table, or a
binary search per entry where a batch's table would be too large. The per-mention
loops this replaced are kept as the reference in tests/features/reference_linker.py, and
the two give the same links (tests/features/test_batch_disambiguation.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..kb.hierarchy import DEFAULT_MAX_TYPES_PER_ENTITY
from .segments import in_sorted_rows, lookup_sorted, rows_sorted, segment_rows

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
        # zero-length arrays hold nothing to change: every empty result shares them (a
        # batch of headlines has hundreds of docs without a link)
        return cls(_NO_INTS, _NO_INTS, _NO_INTS, _NO_FLOATS, _NO_INTS, _NO_BOOLS)


_NO_INTS = np.zeros((0,), dtype=np.int64)
_NO_FLOATS = np.zeros((0,), dtype=np.float32)
_NO_BOOLS = np.zeros((0,), dtype=bool)


class LinkResults(List[LinkResult]):
    """`ContextDisambiguator.choose`'s answer: the LinkResult of each doc, and the same
    links flat (`flat`: each link's doc, then LinkResult's six arrays), which
    `BatchLinks.of` takes as they are instead of concatenating every doc's arrays back."""

    def __init__(self, links: List[LinkResult], flat: Tuple[np.ndarray, ...]) -> None:
        super().__init__(links)
        self.flat = flat


class MentionArrays(NamedTuple):
    """The alias mentions of a batch of docs as flat arrays, sorted by doc, then start:
    each mention's doc, token start and end (within its doc), whether it is written
    without capitals, and its candidates (entity rows and priors, highest prior first)
    as CSR rows."""

    docs: np.ndarray          # int64 (n,)
    starts: np.ndarray        # int64 (n,)
    ends: np.ndarray          # int64 (n,)
    lowercase: np.ndarray     # bool (n,)
    cand_indptr: np.ndarray   # int64 (n + 1,)
    cand_entities: np.ndarray  # int64 (nnz,)
    cand_priors: np.ndarray   # float32 (nnz,)

    @classmethod
    def of(cls, docs_mentions: Sequence[List[Mention]]) -> "MentionArrays":
        """The arrays of per-doc mention lists (`Mention` tuples)."""
        flat = [m for ms in docs_mentions for m in ms]
        counts = np.fromiter((len(ms) for ms in docs_mentions), dtype=np.int64, count=len(docs_mentions))
        sizes = np.fromiter((len(m[2][0]) for m in flat), dtype=np.int64, count=len(flat))
        indptr = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        empty = np.zeros(0, dtype=np.int64)
        return cls(np.repeat(np.arange(len(docs_mentions), dtype=np.int64), counts),
                   np.fromiter((m[0] for m in flat), dtype=np.int64, count=len(flat)),
                   np.fromiter((m[1] for m in flat), dtype=np.int64, count=len(flat)),
                   np.fromiter((m[3] for m in flat), dtype=bool, count=len(flat)),
                   indptr,
                   np.concatenate([empty, *(np.asarray(m[2][0], dtype=np.int64) for m in flat)]),
                   np.concatenate([np.zeros(0, dtype=np.float32),
                                   *(np.asarray(m[2][1], dtype=np.float32) for m in flat)]))


def _first_in_segments(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The index of the first maximum of each segment (segments start at `starts`, none empty)."""
    seg_max = np.maximum.reduceat(values, starts)
    sizes = np.diff(np.append(starts, len(values)))
    is_max = values == np.repeat(seg_max, sizes)
    big = len(values)
    return np.minimum.reduceat(np.where(is_max, np.arange(len(values)), big), starts)


class ContextDisambiguator:
    """Choose among the candidates of a doc's mentions by prior and document context.

    arrays (EntityArrays): the KB's per-entity arrays (types, predicates, neighbours, IDF).
    config (LinkerConfig): the disambiguation thresholds (confident_prior, context_weight,
        max_flat_candidates, flat_prior, min_context_support, min_margin, neighbour_weight).
    """

    def __init__(self, arrays: "EntityArrays", config: "LinkerConfig") -> None:
        self.cfg = config
        self._arrays = arrays
        self._n_types = len(arrays.type_idf)
        self._n_features = self._n_types + len(arrays.pred_idf)
        self._n_entities = len(arrays.types_indptr) - 1
        self._nbrs: Optional[np.ndarray] = None  # the neighbours, each row sorted (made on first use)

    def __call__(self, mentions: List[Mention]) -> LinkResult:
        """The chosen entity of each mention that is linked (`mentions`: one doc's,
        non-overlapping, sorted by start), with its prior and number of candidates."""
        return self.batch([mentions])[0]

    def batch(self, docs_mentions: Sequence[List[Mention]]) -> List[LinkResult]:
        """`__call__` for every doc of a batch (one mention list per doc, empty lists allowed)."""
        return self.choose(MentionArrays.of(docs_mentions), len(docs_mentions))

    def choose(self, m: MentionArrays, n_docs: int) -> List[LinkResult]:
        """The links of each of `n_docs` docs whose mentions are `m`.

        A doc with a confident mention and an ambiguous one re-ranks each ambiguous
        mention's candidates by prior + context_weight * similarity, where similarity is
        the IDF-weighted share of the candidate's signature (its nearest types and its
        predicates) that the doc's other confident mentions share, plus neighbour_weight
        when the candidate is linked confidently elsewhere in the doc or joined to such an
        entity by a KB edge; the mention's own confident link does not count as context.
        Every other mention takes its first candidate. A flat mention (many candidates,
        low prior) is dropped unless context picks its entity by a margin."""
        cfg = self.cfg
        n = len(m.docs)
        if not n:
            return [LinkResult.empty() for _ in range(n_docs)]
        first = m.cand_indptr[:-1]
        sizes = np.diff(m.cand_indptr)
        best_pri = m.cand_priors[first]
        tops = m.cand_entities[first]
        sure = (sizes == 1) | (best_pri >= cfg.confident_prior)
        flat = (sizes > cfg.max_flat_candidates) & (best_pri < cfg.flat_prior)
        has_ctx = np.bincount(m.docs, weights=sure, minlength=n_docs) > 0
        rerank = (sizes > 1) & has_ctx[m.docs]
        choice = first.copy()  # the chosen candidate's position
        keep = ~flat
        if rerank.any():
            choice[rerank], keep[rerank] = self._rerank(m, np.flatnonzero(rerank), sure, tops, flat)
        kept = np.flatnonzero(keep)
        choice = choice[kept]
        docs = m.docs[kept]
        fields = (m.starts[kept], m.ends[kept], m.cand_entities[choice], m.cand_priors[choice], sizes[kept],
                  m.lowercase[kept])
        bounds = np.searchsorted(docs, np.arange(n_docs + 1)).tolist()
        out = []
        for d in range(n_docs):
            a, b = bounds[d], bounds[d + 1]
            out.append(LinkResult(*(f[a:b] for f in fields)) if b > a else LinkResult.empty())
        return LinkResults(out, (docs, *fields))

    def _signatures(self, entities: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The signature entries of `entities` (one row each, in order): (row, feature,
        IDF weight as float64), each row's nearest types first, then its predicates
        (features n_types + predicate), a feature once per row."""
        a = self._arrays
        t_row, t_pos = segment_rows(a.types_indptr, entities, DEFAULT_MAX_TYPES_PER_ENTITY)
        p_row, p_pos = segment_rows(a.preds_indptr, entities)
        t, p = a.types[t_pos], a.preds[p_pos]
        rows = np.concatenate([t_row, p_row])
        feats = np.concatenate([t, p + self._n_types])
        weights = np.concatenate([a.type_idf[t], a.pred_idf[p]]).astype(np.float64)
        order = np.argsort(rows, kind="stable")
        rows, feats, weights = rows[order], feats[order], weights[order]
        key = rows * self._n_features + feats
        # a feature repeated within a row counts once, where it first is; a plain sort finds
        # whether there is any in a fifth of the time np.unique's stable one takes
        ordered = np.sort(key)
        if ordered.size and np.any(ordered[1:] == ordered[:-1]):
            _, firsts = np.unique(key, return_index=True)
            firsts.sort()
            rows, feats, weights = rows[firsts], feats[firsts], weights[firsts]
        return rows, feats, weights

    def _rerank(self, m: MentionArrays, ranked: np.ndarray, sure: np.ndarray, tops: np.ndarray,
                flat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(chosen candidate position, kept) of the mentions `ranked` (ambiguous mentions
        of docs with context)."""
        cfg = self.cfg
        nf, ne = self._n_features, self._n_entities
        # the context of the docs involved: each confident mention's signature features
        # (counted per doc), and its top entity (counted per doc)
        in_docs = np.zeros(len(sure), dtype=bool)
        in_docs[np.isin(m.docs, np.unique(m.docs[ranked]))] = True
        ctx = np.flatnonzero(sure & in_docs)
        s_row, s_feat, _ = self._signatures(tops[ctx])
        ctx_keys, ctx_counts = np.unique(m.docs[ctx][s_row] * nf + s_feat, return_counts=True)
        own_keys = np.sort(ctx[s_row] * nf + s_feat)  # (mention, feature) of each confident mention
        ent_keys, ent_counts = np.unique(m.docs[ctx] * ne + tops[ctx], return_counts=True)
        # every (mention, candidate) pair
        pair_mention, pair_pos = segment_rows(m.cand_indptr, ranked)
        pair_mention = ranked[pair_mention]
        pair_ent = m.cand_entities[pair_pos]
        pair_doc = m.docs[pair_mention]
        own = np.where(sure[pair_mention], tops[pair_mention], -1)
        uniq, inverse = np.unique(pair_ent, return_inverse=True)
        u_row, u_feat, u_weight = self._signatures(uniq)
        u_total = np.bincount(u_row, weights=u_weight, minlength=len(uniq))
        # each pair's signature entries: a feature counts if a confident mention of the doc
        # other than the pair's own has it
        e_pair, e_pos = segment_rows(np.searchsorted(u_row, np.arange(len(uniq) + 1)), inverse)
        feat, weight = u_feat[e_pos], u_weight[e_pos]
        count = _context_counts(ctx_keys, ctx_counts, pair_doc[e_pair] * nf + feat, int(m.docs.max()) + 1, nf)
        # the mention's own confident link is not its context: only a confident mention
        # (own >= 0) has entries of its own to take back
        mine = np.zeros(len(e_pair), dtype=np.int64)
        with_own = np.flatnonzero(own[e_pair] >= 0)
        mine[with_own] = lookup_sorted(own_keys, np.ones(len(own_keys), dtype=np.int64),
                                       pair_mention[e_pair[with_own]] * nf + feat[with_own])
        shared = count - mine > 0
        hit = np.bincount(e_pair[shared], weights=weight[shared], minlength=len(pair_ent))
        total = u_total[inverse]
        sim = np.zeros(len(pair_ent), dtype=np.float64)
        np.divide(hit, total, out=sim, where=total > 0.0)
        if cfg.neighbour_weight:
            sim = np.where(self._linked_nearby(pair_doc, pair_ent, own, ent_keys, ent_counts),
                           sim + cfg.neighbour_weight, sim)
        score = m.cand_priors[pair_pos].astype(np.float64) + cfg.context_weight * sim
        # the first best candidate of each mention, and the best score of the others
        seg = np.flatnonzero(np.r_[True, pair_mention[1:] != pair_mention[:-1]])
        best = _first_in_segments(score, seg)
        best_score, best_sim = score[best], sim[best]
        valid = best_score > -1.0  # the reference's starting best score
        others = score.copy()
        others[best] = -np.inf
        second = np.maximum(np.maximum.reduceat(others, seg), -1.0)
        best_pos = np.where(valid, pair_pos[best], m.cand_indptr[ranked])
        best_score = np.where(valid, best_score, -1.0)
        best_sim = np.where(valid, best_sim, 0.0)
        second = np.where(valid, second, -1.0)
        drop = flat[ranked] & ((best_sim < cfg.min_context_support) | (best_score - second < cfg.min_margin))
        return best_pos, ~drop

    def _linked_nearby(self, docs: np.ndarray, ents: np.ndarray, own: np.ndarray, ent_keys: np.ndarray,
                       ent_counts: np.ndarray) -> np.ndarray:
        """Direct evidence for each (doc, candidate) pair: the same entity is linked
        confidently elsewhere in the doc ("England cricket team ... England"), or a KB edge
        joins it to a confidently linked entity ("Chelsea F.C." -homeGround-> "Stamford
        Bridge"), not counting the mention's own confident link (`own`, -1 if none)."""
        ne = self._n_entities
        same = lookup_sorted(ent_keys, ent_counts, docs * ne + ents) - (ents == own) > 0
        # each pair against each distinct confident entity of its doc
        ctx_docs = ent_keys // ne
        bounds = np.searchsorted(ctx_docs, np.arange(int(docs.max()) + 2))
        q_pair, q_pos = segment_rows(bounds, docs)
        other = ent_keys[q_pos] % ne
        ok = (other != ents[q_pair]) & (ent_counts[q_pos] - (other == own[q_pair]) > 0)
        q_pair, other = q_pair[ok], other[ok]
        a = self._arrays
        if self._nbrs is None:
            self._nbrs = rows_sorted(a.nbr_indptr, a.nbrs)
        edge = in_sorted_rows(a.nbr_indptr, self._nbrs, ents[q_pair], other)
        near = same.copy()
        near[q_pair[edge]] = True
        return near


# the most (doc, feature) cells `_context_counts` lays out as a table (int32: 16 MiB)
_MAX_TABLE_CELLS = 1 << 22


def _context_counts(keys: np.ndarray, counts: np.ndarray, queries: np.ndarray, n_docs: int,
                    n_features: int) -> np.ndarray:
    """`lookup_sorted(keys, counts, queries)` for keys and queries doc * n_features +
    feature: one gather from a (doc, feature) table where the batch's table is small (a KB
    has a few thousand types and predicates), else a binary search per query. A batch
    looks up tens of signature entries for each (mention, candidate) pair, 700k for 1,000
    documents of the scale benchmark's corpus, where the binary searches took most of the
    disambiguation."""
    cells = n_docs * n_features
    if cells > _MAX_TABLE_CELLS:
        return lookup_sorted(keys, counts, queries)
    table = np.zeros(cells, dtype=np.int32)
    table[keys] = counts
    return table[queries].astype(np.int64)


__all__ = ["ContextDisambiguator", "LinkResult", "LinkResults", "Mention", "MentionArrays"]
