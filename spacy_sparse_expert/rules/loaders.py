"""The rules loader for ``[initialize.components.<name>]``, like the KB loader
(`spacy_sparse_expert.kb.loaders`):

    [initialize.components.textcat.rules_loader]
    @misc = "spacy-sparse-expert.RulesLoader.v1"
    path = ${paths.rules}

A null path gives a loader that returns None (no rules). spaCy finds the name through
the ``spacy_misc`` entry point in pyproject.toml.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

from ..errors import Errors, RuleFileError
from .rules import RuleSet

if TYPE_CHECKING:  # pragma: no cover
    from spacy.vocab import Vocab

RulesLoader = Callable[["Vocab"], Optional[RuleSet]]


def load_rules_v1(path: Optional[Union[str, Path]] = None) -> RulesLoader:
    """Registered as ``spacy-sparse-expert.RulesLoader.v1`` (entry point).

    path (Optional[str]): a JSONL rule file, or null for none. RETURNS a loader
    ``(vocab) -> RuleSet | None``. The file is validated when loaded (E020, E021).
    """

    def rules_loader(vocab: "Vocab") -> Optional[RuleSet]:
        if path is None or str(path) == "":
            return None
        rules_path = Path(path)
        if not rules_path.is_file():
            raise RuleFileError(Errors.E021.format(path=rules_path))
        return RuleSet.from_file(rules_path)

    return rules_loader


__all__ = ["RulesLoader", "load_rules_v1"]
