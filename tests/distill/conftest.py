"""Tiny teachers and students for the distillation tests: a handful of docs, models of
2-6 experts and width 16, a few training steps."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import Config

from spacy_sparse_expert.distill import load_student_config
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

FIXTURES = Path(__file__).parent.parent / "fixtures"
LABELS = ["business", "politics", "sport"]
TRAIN: List[Tuple[str, str]] = [
    ("Chelsea beat Arsenal two nil in the Premier League on Saturday.", "sport"),
    ("The striker scored twice and the goalkeeper saved a penalty.", "sport"),
    ("Arsenal fans cheered as the league title race went on.", "sport"),
    ("Tony Blair told Labour MPs the election would be held in May.", "politics"),
    ("The minister defended the new bill in a heated Commons debate.", "politics"),
    ("Gordon Brown and Labour campaigned on taxes before the vote.", "politics"),
    ("Vodafone shares rose after profits beat analysts' forecasts.", "business"),
    ("The bank cut interest rates as inflation and growth slowed.", "business"),
    ("Investors sold shares as the company warned on profits.", "business"),
]
UNLABELLED = [
    "Chelsea fans sang as the Premier League match began.",
    "Labour ministers met to plan the election campaign.",
    "Vodafone profits and shares rose again this year.",
]


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a loaded machine a second OpenMP
    thread makes every op wait for a core (milliseconds per op)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    with one_thread():
        yield


def teacher_model(exclusive: bool = True, **overrides: Any) -> Dict[str, Any]:
    """A 'big' tiny teacher: 6 experts, top-2, width 16, hash rows divisible by the
    student's."""
    model: Dict[str, Any] = {
        "@architectures": "spacy-sparse-expert.MoETextCat.v1",
        "exclusive_classes": exclusive, "n_experts": 6, "k": 2, "d_ff": 32, "capacity_factor": None,
        "n_moe_layers": 1, "d_knowledge": 8, "pooling": "attention", "bow_rows": 2048, "ngram_size": 2,
        # the plain linear path the distillation tests were written with, not the tuned
        # factory default (bow_scale 10, path_dropout 0.5)
        "bow_scale": 1.0, "path_dropout": 0.0, "dropout": 0.0,
        "knowledge_gate": False, "knowledge_dropout": 0.0,
        "encoder": {"@architectures": "spacy-sparse-expert.HashEncoder.v1", "width": 16,
                    "rows": [800, 400, 400, 400], "depth": 2, "d_hidden": 32, "dropout": 0.0},
    }
    model.update(overrides)
    return model


def make_docbin(nlp: Language, path: Path, data: List[Tuple[str, str]], labels: List[str] = LABELS) -> Path:
    db = DocBin()
    for text, label in data:
        doc = nlp.make_doc(text)
        doc.cats = {other: float(other == label) for other in labels}
        db.add(doc)
    db.to_disk(path)
    return path


def train_teacher(path: Path, kb_dir: Path, *, exclusive: bool = True, steps: int = 12,
                  **overrides: Any) -> Path:
    with one_thread():
        return _train_teacher(path, kb_dir, exclusive=exclusive, steps=steps, **overrides)


def _train_teacher(path: Path, kb_dir: Path, *, exclusive: bool, steps: int, **overrides: Any) -> Path:
    torch.manual_seed(0)
    nlp = spacy.blank("en")
    factory = "sparse_expert_textcat" if exclusive else "sparse_expert_textcat_multilabel"
    pipe = nlp.add_pipe(factory, name="textcat", config={"model": teacher_model(exclusive, **overrides)})
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {x: float(x == y) for x in LABELS}}) for t, y in TRAIN]
    pipe.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(kb_dir),
                    rules_loader=load_rules_v1(FIXTURES / "component_rules.jsonl"))
    optimizer = nlp.resume_training()
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


def student_config(knowledge: bool = True, **distill: Any) -> Config:
    """The shipped student config scaled down: 4 experts of d_ff 16, top-1, width 16,
    hash rows dividing the teacher's, one window block, a few epochs; with knowledge
    inputs unless ``knowledge`` is false (the shipped config has none)."""
    cfg = load_student_config(None)
    cfg["components"]["textcat"]["use_knowledge"] = knowledge
    model = cfg["components"]["textcat"]["model"]
    model.update({"n_experts": 4, "k": 1, "d_ff": 16, "d_knowledge": 8, "bow_rows": 2048, "dropout": 0.0,
                  "path_dropout": 0.0})
    model["encoder"].update({"width": 16, "rows": [200, 100, 100, 100], "depth": 1, "d_hidden": 16,
                             "dropout": 0.0})
    settings = {"epochs": 4, "batch_size": 3, "learn_rate": 0.01, "augment_crops": 0}
    settings.update(distill)
    prune = settings.pop("prune", {})
    cfg["distill"].update(settings)
    cfg["distill"]["prune"].update({"min_expert_share": 0.0, "finetune_epochs": 1, **prune})
    return cfg


@pytest.fixture(scope="session")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("distill_kb")
    compile_kb([FIXTURES / "component_kb.ttl"]).to_disk(path)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("distill_data")
    make_docbin(spacy.blank("en"), path / "train.spacy", TRAIN)
    (path / "texts.jsonl").write_text("".join(f'{{"text": "{t}"}}\n' for t in UNLABELLED), encoding="utf8")
    return path


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory, kb_dir: Path) -> Path:
    return train_teacher(tmp_path_factory.mktemp("teacher") / "teacher", kb_dir)
