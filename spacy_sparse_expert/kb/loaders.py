"""The KB loader for ``[initialize.components.<name>]``, in the style of spaCy's
``spacy.KBFromFile.v1``: the config names a path, the component receives a callable
that reads it with the pipeline's vocab.

    [initialize.components.textcat.kb_loader]
    @misc = "spacy-sparse-expert.KBLoader.v1"
    path = ${paths.kb}

A null path gives a loader that returns None (no KB). With ``by_reference = true`` a
pipeline saved later refers to the KB folder by its absolute path and content hash
instead of copying it into ``<component>/kb`` (for KBs too big to copy into every
pipeline; pipeline/serialize.py). spaCy finds the name through the
``spacy_misc`` entry point in pyproject.toml, so this module (like all of kb/) needs no
spaCy import; the rules loader is `spacy_sparse_expert.rules.loaders`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..errors import Errors, KBFormatError
from .knowledge_base import KnowledgeBase

if TYPE_CHECKING:  # pragma: no cover
    from spacy.vocab import Vocab

KBLoader = Callable[["Vocab"], Optional[KnowledgeBase]]


def load_kb_v1(path: Optional[Union[str, Path]] = None, by_reference: bool = False) -> KBLoader:
    """Registered as ``spacy-sparse-expert.KBLoader.v1`` (entry point).

    path (Optional[str]): a compiled KB directory (`sparse-expert kb import ...
    --output DIR`), or null for none.
    by_reference (bool): a pipeline saved with this KB refers to the folder by absolute
    path and content hash instead of holding a copy; loading it then needs the same KB
    at that path (SSE-E270 otherwise). Needs a KB of format 2 (SSE-E271).
    RETURNS a loader ``(vocab) -> KnowledgeBase | None``.
    """

    def kb_loader(vocab: "Vocab") -> Optional[KnowledgeBase]:
        if path is None or str(path) == "":
            return None
        kb_path = Path(path)
        if not kb_path.is_dir():
            raise KBFormatError(Errors.E009.format(path=kb_path, reason="no such directory"))
        kb = KnowledgeBase.from_disk(kb_path)
        if by_reference:
            if not isinstance(kb.meta.get("content_sha256"), str):
                version = kb.meta.get("format_version")
                raise KBFormatError(Errors.E271.format(
                    path=kb_path, reason=f"it is of format {version}, which records no content hash"))
            kb.path = Path(os.path.abspath(kb_path))
            kb.by_reference = True
        return kb

    return kb_loader


__all__ = ["KBLoader", "load_kb_v1"]
