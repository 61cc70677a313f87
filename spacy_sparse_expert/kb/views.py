"""Read-only views of a compiled KB that text-side code (the linker, the featurizer, the
rule matcher) needs as flat arrays; `KnowledgeBase.entity_arrays` builds them once per KB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict

import numpy as np

from .graph_features import sorted_unique

if TYPE_CHECKING:  # pragma: no cover
    from .knowledge_base import KnowledgeBase


@dataclass
class EntityArrays:
    """Per-entity CSR arrays the featurizer and linker need, derived once per KB.

    types: type ids incl. superclasses (the KB stores the closure); predicates: the
    distinct predicates of an entity's outgoing relations.
    """

    types_indptr: np.ndarray        # int64 (n_entities + 1,)
    types: np.ndarray               # int64
    preds_indptr: np.ndarray        # int64 (n_entities + 1,)
    preds: np.ndarray               # int64
    features: np.ndarray            # float32 (n_entities, n_features) in [0, 1]
    type_index: Dict[str, int]
    predicate_index: Dict[str, int]
    type_idf: np.ndarray            # float32 (n_types,) log((1 + n_entities) / (1 + df))
    pred_idf: np.ndarray            # float32 (n_predicates,)
    nbr_indptr: np.ndarray          # int64 (n_entities + 1,) neighbours in either direction
    nbrs: np.ndarray                # int64


def build_entity_arrays(kb: "KnowledgeBase") -> EntityArrays:
    """Build the EntityArrays of `kb` (use `kb.entity_arrays`, which builds them once)."""
    n_ent = kb.n_entities
    rel_indptr = np.asarray(kb.array("relation_indptr"), dtype=np.int64)
    rel_pred = np.asarray(kb.array("relation_predicates"), dtype=np.int64)
    subj = np.repeat(np.arange(n_ent, dtype=np.int64), np.diff(rel_indptr))
    n_pred = max(kb.n_predicates, 1)
    # sorted_unique: numpy 2's hash-based np.unique took ~2 s of every pipeline load here
    keys = sorted_unique(subj * n_pred + rel_pred)
    preds_indptr = np.zeros(n_ent + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_pred, minlength=n_ent), out=preds_indptr[1:])
    preds = keys % n_pred
    types = np.asarray(kb.array("type_ids"), dtype=np.int64)
    obj = np.asarray(kb.array("relation_objects"), dtype=np.int64)
    pairs = sorted_unique(np.concatenate([subj * n_ent + obj, obj * n_ent + subj]))
    nbr_indptr = np.zeros(n_ent + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // max(n_ent, 1), minlength=n_ent), out=nbr_indptr[1:])

    def idf(ids: np.ndarray, n: int) -> np.ndarray:
        df = np.bincount(ids, minlength=n).astype(np.float64)
        return np.log((1.0 + n_ent) / (1.0 + df)).astype(np.float32)

    return EntityArrays(
        np.asarray(kb.array("type_indptr"), dtype=np.int64),
        types,
        preds_indptr,
        preds,
        np.asarray(kb.feature_matrix, dtype=np.float32),
        kb.type_index,
        kb.predicate_index,
        idf(types, kb.n_types),
        idf(preds, kb.n_predicates),
        nbr_indptr,
        pairs % max(n_ent, 1),
    )


__all__ = ["EntityArrays", "build_entity_arrays"]
