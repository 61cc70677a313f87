"""Every config in configs/ loads, fills and initialises with tiny data, and trains a step."""
from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from spacy_sparse_expert.kb.compile import compile_kb

REPO = Path(__file__).parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.cfg"))
FIXTURES = Path(__file__).parent / "fixtures"

TEXTS = [
    ("Chelsea beat Arsenal in the Premier League.", ["sport"]),
    ("Tony Blair told Labour MPs about the election.", ["politics"]),
    ("Vodafone shares rose after profits beat forecasts.", ["business"]),
    ("The new phone runs faster software.", ["tech"]),
    ("The film won three awards at the festival.", ["entertainment"]),
]
LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def test_there_are_configs():
    assert any(path.name == "bbc_news.cfg" for path in CONFIGS)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config_corpus")
    nlp = spacy.blank("en")
    db = DocBin()
    for text, labels in TEXTS:
        doc = nlp.make_doc(text)
        doc.cats = {label: float(label in labels) for label in LABELS}
        db.add(doc)
    db.to_disk(path / "tiny.spacy")
    compile_kb([FIXTURES / "component_kb.ttl"]).to_disk(path / "kb")
    return path


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_initialises_and_trains(config_path: Path, tiny_corpus: Path):
    overrides = {
        "paths.train": str(tiny_corpus / "tiny.spacy"),
        "paths.dev": str(tiny_corpus / "tiny.spacy"),
        "paths.kb": str(tiny_corpus / "kb"),
        "paths.rules": str(FIXTURES / "component_rules.jsonl"),
    }
    config = load_config(config_path, overrides=overrides, interpolate=False)
    nlp = init_nlp(config)
    docs = DocBin().from_disk(tiny_corpus / "tiny.spacy").get_docs(nlp.vocab)
    train = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.resume_training()
    losses = nlp.update(train, sgd=optimizer)
    assert all(loss == loss for loss in losses.values())  # not NaN
    doc = nlp(TEXTS[0][0])
    assert set(doc.cats) == set(LABELS)
    scores = nlp.evaluate(train)
    assert "cats_macro_f" in scores
