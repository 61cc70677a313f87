"""spacy-sparse-expert: knowledge-biased sparse mixture-of-experts text classification
for spaCy."""
from __future__ import annotations

__version__ = "0.1.0"

from .kb.knowledge_base import KnowledgeBase  # noqa: E402

# importing these registers the factories, architectures, scorers and loaders
from .kb import loaders  # noqa: E402,F401
from .ml import architectures  # noqa: E402,F401
from .pipeline import textcat  # noqa: E402,F401
from .pipeline.textcat import SparseExpertTextCategorizer  # noqa: E402

__all__ = ["KnowledgeBase", "SparseExpertTextCategorizer", "__version__"]
