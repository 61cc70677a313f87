"""Export a compiled KB to spaCy's own ``spacy.kb.InMemoryLookupKB``, the KB that spaCy's
``entity_linker`` reads (``[initialize.components.entity_linker.kb_loader]`` with
``@misc = "spacy.KBFromFile.v1"``).

This package's :class:`~.knowledge_base.KnowledgeBase` is *not* a subclass of spaCy's
abstract ``spacy.kb.KnowledgeBase``: it holds types, relations and graph features for
the text classifier, and spaCy's entity linker cannot read it. The export copies over
what spaCy's KB holds:

- entities: the IRIs, with the entity's degree in the relation graph (edges in and out)
  as its frequency, the nearest thing a KB without a corpus has to a mention count;
- entity vectors: ``"graph"`` gives the normalised graph features (each in [0, 1])
  followed by a constant 1, so that no vector is all zeros (spaCy's entity linker divides
  by the vector's norm); ``"zeros"`` gives placeholders of ``vector_length`` to be
  replaced by real embeddings before training (spaCy cannot train against zero vectors);
- aliases: each alias under its original-case form (what a span's text is) and, where it
  differs, its normalised form, with the KB's priors P(entity | alias) as probabilities.

spaCy is imported inside the functions: `sparse-expert kb` commands load no torch, and
this module none of spaCy until an export runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import Errors, KBImportError
from . import storage
from .knowledge_base import KnowledgeBase
from .outputs import check_output_target

if TYPE_CHECKING:  # pragma: no cover
    from spacy.kb import InMemoryLookupKB
    from spacy.vocab import Vocab

VECTORS = ("graph", "zeros")
# what InMemoryLookupKB.to_disk writes; the only files an earlier export may hold
SPACY_KB_FILES = frozenset({"contents", "strings.json"})
DEFAULT_ZEROS_LENGTH = 64  # spaCy's own default entity_vector_length


class SpacyKBExportError(KBImportError):
    """A KB cannot be exported to spaCy's InMemoryLookupKB as asked."""


def entity_vectors(kb: KnowledgeBase, vectors: str = "graph", vector_length: Optional[int] = None) -> np.ndarray:
    """The entity vectors of an export: float32 (n_entities, vector_length).

    kb (KnowledgeBase): the compiled KB.
    vectors (str): "graph" (normalised graph features and a constant 1) or "zeros".
    vector_length (Optional[int]): for "zeros" the length (default 64); for "graph" it
        must be None or n_features + 1.
    RETURNS (numpy.ndarray): one row per entity id.
    """
    if vectors not in VECTORS:
        raise SpacyKBExportError(Errors.E240.format(value=vectors, choices=", ".join(VECTORS)))
    if vectors == "graph":
        length = kb.n_features + 1
        if vector_length is not None and vector_length != length:
            raise SpacyKBExportError(Errors.E241.format(length=vector_length, n=length,
                                                        features=", ".join(kb.feature_names)))
        ones = np.ones((kb.n_entities, 1), dtype=np.float32)
        return np.concatenate([kb.feature_matrix.astype(np.float32), ones], axis=1)
    length = DEFAULT_ZEROS_LENGTH if vector_length is None else vector_length
    if length < 1:
        raise SpacyKBExportError(Errors.E242.format(length=length))
    return np.zeros((kb.n_entities, length), dtype=np.float32)


def to_spacy_kb(kb: KnowledgeBase, vocab: Optional["Vocab"] = None, *, vectors: str = "graph",
                vector_length: Optional[int] = None) -> "InMemoryLookupKB":
    """Build spaCy's InMemoryLookupKB from a compiled KB (see the module docstring).

    kb (KnowledgeBase): the compiled KB.
    vocab (Optional[Vocab]): the vocab whose StringStore gets the IRIs and aliases; a
        new one if None (what `export_spacy_kb` writes to disk).
    vectors (str): "graph" or "zeros" (see `entity_vectors`).
    vector_length (Optional[int]): see `entity_vectors`.
    RETURNS (InMemoryLookupKB): entities, frequencies, vectors and aliases of `kb`.
    """
    from spacy.kb import InMemoryLookupKB
    from spacy.vocab import Vocab

    matrix = entity_vectors(kb, vectors, vector_length)
    out = InMemoryLookupKB(vocab if vocab is not None else Vocab(), entity_vector_length=matrix.shape[1])
    degree = _degrees(kb)
    out.set_entities(list(kb.entities), [float(d) for d in degree], [row.tolist() for row in matrix])
    for i, (alias, ids, priors) in enumerate(kb.alias_table()):
        probs = priors.astype(np.float64)
        total = probs.sum()
        if total > 1.0:  # float32 priors may sum a rounding error above 1, which spaCy refuses
            probs = probs / total
        entities = [kb.entities[e] for e in ids]
        for form in dict.fromkeys((kb.alias_surfaces[i], alias)):
            out.add_alias(alias=form, entities=entities, probabilities=probs.tolist())
    return out


def _degrees(kb: KnowledgeBase) -> np.ndarray:
    """Edges in and out of each entity in the relation graph."""
    if "degree" in kb.feature_names:
        return kb.raw_graph_features[:, kb.feature_names.index("degree")]
    out_degree = np.diff(kb.array("relation_indptr"))
    in_degree = np.bincount(kb.array("relation_objects"), minlength=kb.n_entities)
    return (out_degree + in_degree).astype(np.float64)


def export_spacy_kb(kb_dir: str | Path, output: str | Path, *, vectors: str = "graph",
                    vector_length: Optional[int] = None) -> "InMemoryLookupKB":
    """Load the KB in `kb_dir` and write it as spaCy's InMemoryLookupKB to directory
    `output` (as `InMemoryLookupKB.to_disk` does: `contents` and `strings.json`), which
    `spacy.KBFromFile.v1` and `InMemoryLookupKB.from_disk` read.

    `output` is replaced atomically; it may be missing, empty or an earlier export, never
    a symlink, the KB directory itself or anything else.

    kb_dir (str | Path): a KB directory written by `sparse-expert kb import`.
    output (str | Path): the directory to write.
    vectors (str): "graph" or "zeros" (see `entity_vectors`).
    vector_length (Optional[int]): see `entity_vectors`.
    RETURNS (InMemoryLookupKB): the exported KB.
    """
    kb = KnowledgeBase.from_disk(kb_dir)
    spacy_kb = to_spacy_kb(kb, vectors=vectors, vector_length=vector_length)
    target = storage.output_path(output)

    def check(path: Path) -> None:
        check_output_target(path, [("KB directory", kb_dir)], error=SpacyKBExportError)
        if path.is_dir():
            extra = sorted(set(os.listdir(path)) - SPACY_KB_FILES)
            if extra:
                raise SpacyKBExportError(Errors.E243.format(path=path, files=", ".join(extra[:5])))
        elif path.exists():
            raise SpacyKBExportError(Errors.E243.format(path=path, files="it is a file"))

    target.parent.mkdir(parents=True, exist_ok=True)
    with storage.import_lock(target, busy=_busy):
        storage.recover(target, is_own=lambda path: (path / "contents").is_file())  # a killed export's leftovers
        storage.replace_dir_atomically(target, spacy_kb.to_disk, check=check)
    return spacy_kb


def _busy(output: Path, lock: Path) -> SpacyKBExportError:
    return SpacyKBExportError(Errors.E244.format(path=output, lock=lock))


__all__ = ["SpacyKBExportError", "entity_vectors", "export_spacy_kb", "to_spacy_kb"]
