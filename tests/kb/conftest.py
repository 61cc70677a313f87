from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> KnowledgeBase:
    """The small linking/feature KB (tests/fixtures/features_kb.ttl), imported per module."""
    return import_rdf([fixtures_dir / "features_kb.ttl"], tmp_path_factory.mktemp("kb") / "kb")


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")
