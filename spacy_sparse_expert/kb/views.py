"""Read-only views of a compiled KB that text-side code (the linker, the featurizer, the
rule matcher) needs as flat arrays; `KnowledgeBase.entity_arrays` holds them, once per KB.

Building them sorts every relation (2-3 s and hundreds of MB for 7M relations), so `kb
import` and `KnowledgeBase.to_disk` store them in the KB folder (``entity_arrays.npz``,
the arrays of `stored_arrays`), and loading maps them in place (`from_stored`). The file carries two
keys, checked before use: the version of the derivation below (`VERSION`, raised when it
changes) and the ``content_sha256`` of the KB files it was derived from, so a file left
beside a KB that was since written again is never used for it. A folder without the file
(written before it existed, or format 1) builds the arrays at load, as `build_entity_arrays`
always did; the stored ones are the same arrays, dtype for dtype.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Mapping, Optional

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
    # the NORM keys of each entity's description words (features/entity_words.py) for the
    # blank tokenizer named `words_tokenizer`, when `kb import` made them; else None
    words_indptr: Optional[np.ndarray] = None   # int64 (n_entities + 1,)
    words: Optional[np.ndarray] = None          # uint64
    words_tokenizer: Optional[str] = None


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


VERSION = 1  # of what build_entity_arrays derives; a file of another version is built again
# The fields stored (`features` is the KB's normalised graph features, and the two
# dictionaries are the KB's own: neither is derived here).
STORED: Dict[str, type] = {
    "types_indptr": np.int64, "types": np.int64, "preds_indptr": np.int64, "preds": np.int64,
    "type_idf": np.float32, "pred_idf": np.float32, "nbr_indptr": np.int64, "nbrs": np.int64,
}


def stored_arrays(arrays: EntityArrays, content_sha256: str) -> Dict[str, np.ndarray]:
    """What ``entity_arrays.npz`` holds for `arrays` of the KB whose files have digest
    `content_sha256` (meta.json's): the STORED fields, the description words where there
    are some, and the keys as a JSON string."""
    key: Dict[str, object] = {"version": VERSION, "content_sha256": content_sha256}
    out = {name: getattr(arrays, name) for name in STORED}
    if arrays.words_tokenizer is not None and arrays.words_indptr is not None and arrays.words is not None:
        key["words_tokenizer"] = arrays.words_tokenizer
        out.update(words_indptr=arrays.words_indptr, words=arrays.words)
    return {**out, "keys": np.array(json.dumps(key))}


def from_stored(kb: "KnowledgeBase", stored: Mapping[str, np.ndarray]) -> Optional[EntityArrays]:
    """The EntityArrays of `kb` from the arrays of its ``entity_arrays.npz``, used in place.

    RETURNS None when the file was written for other KB files or by another `VERSION`
    (stale: the caller builds them, as for a folder without the file). Raises ValueError
    when it is damaged: a missing array, a dtype or shape that does not fit the KB, an
    index array that does not index its values, an id out of range, an idf that is not
    finite. These checks read every stored array once (~0.1 s for 25M ids) and leave
    them mapped.
    """
    try:
        keys = json.loads(str(np.asarray(stored["keys"]).reshape(-1)[0]))
        version, digest = keys["version"], keys["content_sha256"]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"its keys are unreadable ({err!r})") from None
    if version != VERSION or digest != kb.meta.get("content_sha256"):
        return None
    for name, dtype in STORED.items():
        array = stored.get(name)
        if array is None or array.dtype != np.dtype(dtype) or array.ndim != 1:
            found = "missing" if array is None else f"{array.dtype} with {array.ndim} dimensions"
            raise ValueError(f"array {name!r} is {found}, not 1-d {np.dtype(dtype)}")
    n_ent = kb.n_entities
    for indptr, values, n in (("types_indptr", "types", kb.n_types), ("preds_indptr", "preds", kb.n_predicates),
                              ("nbr_indptr", "nbrs", n_ent)):
        ptr, ids = stored[indptr], stored[values]
        if (ptr.shape[0] != n_ent + 1 or ptr[0] != 0 or ptr[-1] != ids.shape[0]
                or np.any(ptr[1:] < ptr[:-1])):
            raise ValueError(f"array {indptr!r} does not index {values!r} for {n_ent:,} entities")
        # one pass: a negative id is a huge unsigned one
        if ids.size and int(ids.view(np.uint64).max()) >= n:
            raise ValueError(f"array {values!r} holds ids outside 0..{n - 1}")
    for name, n in (("type_idf", kb.n_types), ("pred_idf", kb.n_predicates)):
        if stored[name].shape != (n,) or not np.isfinite(stored[name]).all():
            raise ValueError(f"array {name!r} is not {n:,} finite numbers")
    words_tokenizer = keys.get("words_tokenizer")
    words_indptr, words = stored.get("words_indptr"), stored.get("words")
    if words_tokenizer is not None:
        if (words_indptr is None or words is None or words_indptr.dtype != np.int64 or words.dtype != np.uint64
                or words_indptr.shape != (n_ent + 1,) or words_indptr[0] != 0
                or words_indptr[-1] != words.shape[0] or np.any(words_indptr[1:] < words_indptr[:-1])):
            raise ValueError("arrays 'words_indptr' and 'words' do not index description words per entity")
    return EntityArrays(
        types_indptr=stored["types_indptr"], types=stored["types"], preds_indptr=stored["preds_indptr"],
        preds=stored["preds"], features=np.asarray(kb.feature_matrix, dtype=np.float32), type_index=kb.type_index,
        predicate_index=kb.predicate_index, type_idf=stored["type_idf"], pred_idf=stored["pred_idf"],
        nbr_indptr=stored["nbr_indptr"], nbrs=stored["nbrs"],
        words_indptr=words_indptr if words_tokenizer is not None else None,
        words=words if words_tokenizer is not None else None,
        words_tokenizer=str(words_tokenizer) if words_tokenizer is not None else None)


__all__ = ["EntityArrays", "STORED", "VERSION", "build_entity_arrays", "from_stored", "stored_arrays"]
