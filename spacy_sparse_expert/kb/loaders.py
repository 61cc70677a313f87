"""The KB loader for ``[initialize.components.<name>]``, in the style of spaCy's
``spacy.KBFromFile.v1``: the config names a path, the component receives a callable
that reads it with the pipeline's vocab.

    [initialize.components.textcat.kb_loader]
    @misc = "spacy-sparse-expert.KBLoader.v1"
    path = ${paths.kb}

A null path gives a loader that returns None (no KB). spaCy finds the name through the
``spacy_misc`` entry point in pyproject.toml, so this module (like all of kb/) needs no
spaCy import; the rules loader is `spacy_sparse_expert.rules.loaders`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..errors import Errors, KBFormatError
from .knowledge_base import KnowledgeBase

if TYPE_CHECKING:  # pragma: no cover
    from spacy.vocab import Vocab

KBLoader = Callable[["Vocab"], Optional[KnowledgeBase]]


def load_kb_v1(path: Optional[Union[str, Path]] = None) -> KBLoader:
    """Registered as ``spacy-sparse-expert.KBLoader.v1`` (entry point).

    path (Optional[str]): a compiled KB directory (`sparse-expert kb import ...
    --output DIR`), or null for none. RETURNS a loader ``(vocab) -> KnowledgeBase | None``.
    """

    def kb_loader(vocab: "Vocab") -> Optional[KnowledgeBase]:
        if path is None or str(path) == "":
            return None
        kb_path = Path(path)
        if not kb_path.is_dir():
            raise KBFormatError(Errors.E009.format(path=kb_path, reason="no such directory"))
        return KnowledgeBase.from_disk(kb_path)

    return kb_loader


__all__ = ["KBLoader", "load_kb_v1"]
