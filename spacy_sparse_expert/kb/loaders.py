"""KB and rule loaders for ``[initialize.components.<name>]``, in the style of spaCy's
``spacy.KBFromFile.v1``: the config names a path, the component receives a callable
that reads it with the pipeline's vocab.

    [initialize.components.textcat.kb_loader]
    @misc = "spacy-sparse-expert.KBLoader.v1"
    path = ${paths.kb}

A null path gives a loader that returns None (no KB / no rules).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from spacy.vocab import Vocab

from ..errors import Errors, KBFormatError, RuleFileError
from ..registry import registry
from .knowledge_base import KnowledgeBase
from .rules import RuleSet

KBLoader = Callable[[Vocab], Optional[KnowledgeBase]]
RulesLoader = Callable[[Vocab], Optional[RuleSet]]


@registry.misc("spacy-sparse-expert.KBLoader.v1")
def load_kb_v1(path: Optional[Union[str, Path]] = None) -> KBLoader:
    """path (Optional[str]): a compiled KB directory (`sparse-expert kb import ...
    --output DIR`), or null for none. RETURNS a loader ``(vocab) -> KnowledgeBase | None``.
    """

    def kb_loader(vocab: Vocab) -> Optional[KnowledgeBase]:
        if path is None or str(path) == "":
            return None
        kb_path = Path(path)
        if not kb_path.is_dir():
            raise KBFormatError(Errors.E009.format(path=kb_path, reason="no such directory"))
        return KnowledgeBase.from_disk(kb_path)

    return kb_loader


@registry.misc("spacy-sparse-expert.RulesLoader.v1")
def load_rules_v1(path: Optional[Union[str, Path]] = None) -> RulesLoader:
    """path (Optional[str]): a JSONL rule file, or null for none. RETURNS a loader
    ``(vocab) -> RuleSet | None``. The file is validated when loaded (E020, E021)."""

    def rules_loader(vocab: Vocab) -> Optional[RuleSet]:
        if path is None or str(path) == "":
            return None
        rules_path = Path(path)
        if not rules_path.is_file():
            raise RuleFileError(Errors.E021.format(path=rules_path))
        return RuleSet.from_file(rules_path)

    return rules_loader


__all__ = ["KBLoader", "RulesLoader", "load_kb_v1", "load_rules_v1"]
