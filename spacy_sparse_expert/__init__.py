"""spacy-sparse-expert: knowledge-biased sparse mixture-of-experts text classification
for spaCy.

Importing the package imports nothing heavy: spaCy finds the factories, architectures,
scorers and loaders through the entry points in pyproject.toml, and `KnowledgeBase` /
`SparseExpertTextCategorizer` are loaded on first access (PEP 562), so `sparse-expert kb`
commands run without spaCy or torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .kb.knowledge_base import KnowledgeBase
    from .pipeline.textcat import SparseExpertTextCategorizer

_LAZY = {
    "KnowledgeBase": "spacy_sparse_expert.kb.knowledge_base",
    "SparseExpertTextCategorizer": "spacy_sparse_expert.pipeline.textcat",
}


def _version() -> str:
    # the installed distribution's version (pyproject.toml is the one place it is written)
    from importlib import metadata

    try:
        return metadata.version("spacy-sparse-expert")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare source tree
        return "unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])


__all__ = ["KnowledgeBase", "SparseExpertTextCategorizer", "__version__"]
