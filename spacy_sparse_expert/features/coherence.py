"""Collective disambiguation: the candidates of a doc's mentions that fit together win.

"Chelsea beat Arsenal at Stamford Bridge": the prior says Chelsea the district (0.63), but
Chelsea F.C. has a KB edge to Stamford Bridge, shares neighbours (the league, London) with
Arsenal F.C. and shares its type. Every candidate of every alias in the doc is scored by

    score(c) = log prior(c) + coherence_weight * coherence(c)
    coherence(c) = mean over the doc's other aliases a (the coherence_top_k most supportive)
                   of  sum_{c' in a} belief(c') * rel(c, c')
    rel(c, c') = edge_weight * [KB edge] * specificity (1 for the same entity)
               + shared_neighbour_weight * |N(c) & N(c')| / sqrt(|N(c)| |N(c')|)
               + shared_type_weight * cosine of the IDF-weighted type + predicate profiles

with beliefs starting at the priors and refined as softmax(score) per alias for
`coherence_rounds` rounds, so that an ambiguous neighbour supports a candidate through
its likely readings, not through all of them equally. Mentions written the same way (one
alias, the same candidates) are one unit: repeating "Chelsea" does not vote for itself.
Everything is matrix algebra over the doc's candidates (scipy.sparse rows of the KB's
neighbour and profile matrices), so a doc costs a few small matrix products; the work is
bounded (MAX_CANDIDATES per alias, blocks of MAX_BLOCK candidates).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from .disambiguation import LinkResult, Mention

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

    from ..kb.views import EntityArrays
    from .linker import LinkerConfig


MAX_CANDIDATES = 10
MAX_BLOCK = 1024


def _blocks(units: List[Tuple[np.ndarray, np.ndarray]]) -> List[List[Tuple[np.ndarray, np.ndarray]]]:
    """Consecutive runs of units with at most MAX_BLOCK candidates each (first-seen order,
    so a block is a stretch of the doc)."""
    blocks: List[List[Tuple[np.ndarray, np.ndarray]]] = [[]]
    size = 0
    for unit in units:
        if blocks[-1] and size + len(unit[0]) > MAX_BLOCK:
            blocks.append([])
            size = 0
        blocks[-1].append(unit)
        size += len(unit[0])
    return blocks


def _row_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    from scipy import sparse

    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_matrix(sparse.diags(inv) @ matrix)


class CoherenceMatrices:
    """The KB-wide sparse matrices coherence reads rows of, built once per KB.

    adj: (n_entities, n_entities) 0/1 neighbours in either direction; adj_norm: the same,
    rows L2-normalised (a row product is the cosine of two neighbour sets); profile:
    (n_entities, n_types + n_predicates) IDF-weighted types and predicates, L2-normalised;
    specificity: (n_entities,) log((1 + n) / (1 + degree)) / log(1 + n), in [0, 1].
    """

    def __init__(self, arrays: "EntityArrays") -> None:
        # imported here: scipy takes ~0.25 s to import, which every pipeline load paid
        # although only the "coherence" method builds these matrices
        from scipy import sparse

        n_ent = int(arrays.nbr_indptr.shape[0] - 1)
        self.adj = sparse.csr_matrix((np.ones(arrays.nbrs.shape[0], dtype=np.float32), arrays.nbrs,
                                      arrays.nbr_indptr), shape=(n_ent, n_ent))
        self.adj_norm = _row_normalised(self.adj)
        # an edge to a hub ("England", thousands of neighbours) says little; to a club, much
        deg = np.diff(arrays.nbr_indptr).astype(np.float64)
        self.specificity = np.log((1.0 + n_ent) / (1.0 + deg)) / np.log(1.0 + n_ent)
        types = sparse.csr_matrix((arrays.type_idf[arrays.types], arrays.types, arrays.types_indptr),
                                  shape=(n_ent, int(arrays.type_idf.shape[0])))
        preds = sparse.csr_matrix((arrays.pred_idf[arrays.preds], arrays.preds, arrays.preds_indptr),
                                  shape=(n_ent, int(arrays.pred_idf.shape[0])))
        self.profile = _row_normalised(sparse.hstack([types, preds], format="csr"))


class CoherenceDisambiguator:
    """Choose among the candidates of a doc's mentions by prior and mutual relatedness.

    arrays (EntityArrays): the KB's per-entity arrays (neighbours, types, predicates, IDF).
    config (LinkerConfig): coherence_weight, edge_weight, shared_neighbour_weight,
        shared_type_weight, coherence_rounds, coherence_top_k, and the flat-alias rule
        (max_flat_candidates, flat_prior, min_margin, min_coherence).
    matrices (Optional[CoherenceMatrices]): prebuilt for `arrays` (a linker shares them
        through `KnowledgeBase.derived`); built here when None.
    """

    def __init__(self, arrays: "EntityArrays", config: "LinkerConfig",
                 matrices: Optional[CoherenceMatrices] = None) -> None:
        self.cfg = config
        m = matrices if matrices is not None else CoherenceMatrices(arrays)
        self._adj, self._adj_norm, self._profile, self._spec = m.adj, m.adj_norm, m.profile, m.specificity

    def relatedness(self, ents: np.ndarray) -> np.ndarray:
        """rel(c, c') for every pair of `ents` (int64 (n,)): float64 (n, n), symmetric,
        at most edge_weight + shared_neighbour_weight + shared_type_weight."""
        cfg = self.cfg
        rel = np.zeros((len(ents), len(ents)), dtype=np.float64)
        if cfg.edge_weight:
            edge = (self._adj[ents][:, ents].toarray() > 0).astype(np.float64)
            if cfg.edge_specificity:
                spec = self._spec[ents]
                edge *= np.minimum(spec[:, None], spec[None, :])
            edge[ents[:, None] == ents[None, :]] = 1.0
            rel += cfg.edge_weight * edge
        if cfg.shared_neighbour_weight:
            rows = self._adj_norm[ents]
            rel += cfg.shared_neighbour_weight * (rows @ rows.T).toarray()
        if cfg.shared_type_weight:
            rows = self._profile[ents]
            rel += cfg.shared_type_weight * (rows @ rows.T).toarray()
        return rel

    def __call__(self, mentions: List[Mention]) -> LinkResult:
        """The chosen entity of each mention that is linked (`mentions`: non-overlapping,
        sorted by start), with its prior and number of candidates."""
        cfg = self.cfg
        # one unit per distinct candidate list (an alias as the writing allows it)
        unit_of: Dict[Tuple[int, ...], int] = {}
        mention_unit = []
        units: List[Tuple[np.ndarray, np.ndarray]] = []
        for _, _, (ents, pri), _ in mentions:
            key = tuple(ents.tolist())
            u = unit_of.get(key)
            if u is None:
                u = unit_of[key] = len(units)
                units.append((ents, pri))
            mention_unit.append(u)
        # Bounded work per doc: an alias's first MAX_CANDIDATES (by prior) compete, and a
        # long doc is cut into consecutive blocks of aliases with at most MAX_BLOCK
        # candidates in all, so the dense (n, n) relatedness stays small (8 MB at most).
        competing = [(e[:MAX_CANDIDATES], p[:MAX_CANDIDATES]) for e, p in units]
        best: List[int] = []
        coh_parts, margin_parts = [], []
        for block in _blocks(competing):
            b, c, m = self._choose(block)
            best += b
            coh_parts.append(c)
            margin_parts.append(m)
        coh_best, margin = np.concatenate(coh_parts), np.concatenate(margin_parts)
        chosen, prior, kept, n_cands = [], [], [], []
        for j, u in enumerate(mention_unit):
            ents, pri = units[u]
            flat = len(ents) > cfg.max_flat_candidates and pri[0] < cfg.flat_prior
            if flat and (coh_best[u] < cfg.min_coherence or margin[u] < cfg.min_margin):
                continue  # a very ambiguous alias that the doc does not disambiguate
            chosen.append(int(ents[best[u]]))
            prior.append(float(pri[best[u]]))
            kept.append(j)
            n_cands.append(len(ents))
        return LinkResult(
            np.array([mentions[j][0] for j in kept], dtype=np.int64),
            np.array([mentions[j][1] for j in kept], dtype=np.int64),
            np.array(chosen, dtype=np.int64),
            np.array(prior, dtype=np.float32),
            np.array(n_cands, dtype=np.int64),
            np.array([mentions[j][3] for j in kept], dtype=bool),
        )

    def _pool(self, support: np.ndarray, n_other: int) -> np.ndarray:
        """Coherence from the (n_cands, n_units) support: the mean over the `coherence_top_k`
        most supportive other aliases (all when 0), so that the many aliases a doc shares
        with no candidate (common words, places in passing) do not drown the few that decide."""
        k = self.cfg.coherence_top_k
        if k <= 0 or k >= support.shape[1]:
            return support.sum(axis=1) / max(n_other, 1)
        top = np.partition(support, support.shape[1] - k, axis=1)[:, -k:]
        return top.sum(axis=1) / min(k, max(n_other, 1))

    def _choose(self, units: List[Tuple[np.ndarray, np.ndarray]]) -> Tuple[List[int], np.ndarray, np.ndarray]:
        """Per unit: index of the winning candidate, its coherence, and its belief margin
        over the runner-up (1.0 for a single candidate)."""
        cfg = self.cfg
        n_u = len(units)
        sizes = np.array([len(e) for e, _ in units], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        ents = np.concatenate([e for e, _ in units]).astype(np.int64)
        pri = np.concatenate([p for _, p in units]).astype(np.float64)
        owner = np.repeat(np.arange(n_u), sizes)
        log_prior = np.log(np.maximum(pri, 1e-6))
        coh = np.zeros(len(ents), dtype=np.float64)
        belief = pri.copy()
        if n_u > 1 and cfg.coherence_weight and (sizes > 1).any():
            rel = self.relatedness(ents)
            rel[owner[:, None] == owner[None, :]] = 0.0  # an alias never supports itself
            for _ in range(max(1, cfg.coherence_rounds)):
                # support of candidate i from unit u: sum over u's candidates of belief * rel
                support = np.add.reduceat(rel * belief[None, :], starts, axis=1)  # (n_cands, n_units)
                coh = self._pool(support, n_u - 1)
                score = log_prior + cfg.coherence_weight * coh
                score -= np.maximum.reduceat(score, starts)[owner]
                exp = np.exp(score)
                belief = exp / np.add.reduceat(exp, starts)[owner]
        best, coh_best, margin = [], np.zeros(n_u), np.ones(n_u)
        for u in range(n_u):
            b = belief[starts[u] : starts[u] + sizes[u]]
            k = int(np.argmax(b))  # ties: the higher prior (candidates come prior-sorted)
            best.append(k)
            coh_best[u] = coh[starts[u] + k]
            if sizes[u] > 1:
                margin[u] = float(b[k] - np.partition(b, -2)[-2])
        return best, coh_best, margin


__all__ = ["CoherenceDisambiguator", "CoherenceMatrices"]
