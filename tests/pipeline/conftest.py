"""Shared pieces of the component tests: tiny model settings, tiny data, a tiny KB."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example

from spacy_sparse_expert.kb.compile import compile_kb

FIXTURES = Path(__file__).parent.parent / "fixtures"
LABELS = ["business", "politics", "sport"]

TRAIN_DATA: List[Tuple[str, str]] = [
    ("Chelsea beat Arsenal two nil in the Premier League on Saturday.", "sport"),
    ("The striker scored twice and the goalkeeper saved a penalty.", "sport"),
    ("Tony Blair told Labour MPs the election would be held in May.", "politics"),
    ("The minister defended the new bill in a heated Commons debate.", "politics"),
    ("Vodafone shares rose after profits beat analysts' forecasts.", "business"),
    ("The bank cut interest rates as inflation and growth slowed.", "business"),
]
MULTILABEL_DATA: List[Tuple[str, List[str]]] = [
    ("Chelsea beat Arsenal in the Premier League.", ["sport"]),
    ("Tony Blair met bank bosses about taxes.", ["politics", "business"]),
    ("The minister spoke about the football club's debts.", ["politics", "sport", "business"]),
    ("Vodafone shares rose after record profits.", ["business"]),
]


def tiny_model(exclusive: bool = True, **overrides: Any) -> Dict[str, Any]:
    """A model small enough for unit tests: 4 experts, width 16."""
    model: Dict[str, Any] = {
        "@architectures": "spacy-sparse-expert.MoETextCat.v1",
        "exclusive_classes": exclusive,
        "n_experts": 4,
        "k": 2,
        "d_ff": 16,
        "capacity_factor": None,
        "n_moe_layers": 1,
        "d_knowledge": 8,
        "pooling": "attention",
        "bow_rows": 2048,
        "ngram_size": 2,
        # the plain linear path, not the tuned factory default (10, 0.5): fixtures/behaviour.json
        # and the overfitting tests were recorded with it, and path dropout adds noise
        "bow_scale": 1.0,
        "path_dropout": 0.0,
        # and knowledge at full strength from the first step (no gate, no knowledge dropout)
        "knowledge_gate": False,
        "knowledge_dropout": 0.0,
        "dropout": 0.0,
        "encoder": {
            "@architectures": "spacy-sparse-expert.HashEncoder.v1",
            "width": 16,
            "rows": [500, 200, 200, 200],
            "depth": 1,
            "d_hidden": 16,
            "dropout": 0.0,
        },
    }
    model.update(overrides)
    return model


def make_examples(nlp: Language, multilabel: bool = False) -> List[Example]:
    examples = []
    if multilabel:
        for text, labels in MULTILABEL_DATA:
            cats = {label: float(label in labels) for label in LABELS}
            examples.append(Example.from_dict(nlp.make_doc(text), {"cats": cats}))
    else:
        for text, label in TRAIN_DATA:
            cats = {other: float(other == label) for other in LABELS}
            examples.append(Example.from_dict(nlp.make_doc(text), {"cats": cats}))
    return examples


def kb_path() -> Path:
    return FIXTURES / "component_kb.ttl"


def rules_path() -> Path:
    return FIXTURES / "component_rules.jsonl"


@pytest.fixture(scope="session")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny KB compiled to a directory, as `sparse-expert kb import` writes it."""
    path = tmp_path_factory.mktemp("component_kb")
    compile_kb([kb_path()]).to_disk(path)
    return path


def make_nlp(factory: str = "sparse_expert_textcat", **config: Any) -> Language:
    nlp = spacy.blank("en")
    exclusive = factory == "sparse_expert_textcat"
    config.setdefault("model", tiny_model(exclusive))
    nlp.add_pipe(factory, name="textcat", config=config)
    return nlp
