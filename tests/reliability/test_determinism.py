"""Determinism on CPU: the same config and seed give bit-identical weights and
predictions; a save/load round trip (to_disk/spacy.load and to_bytes/from_bytes) gives
identical doc.cats, not merely close ones."""
from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from thinc.api import fix_random_seed

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.wrapper import state_to_bytes

from ..pipeline.conftest import TRAIN_DATA, kb_path, make_examples, make_nlp, rules_path, tiny_model
from .test_docs_edge_cases import EDGE_TEXTS

TEXTS = [text for text, _ in TRAIN_DATA] + EDGE_TEXTS


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb"
    compile_kb([kb_path()]).to_disk(path)
    return path


def train(seed: int, kb_dir: Path, factory: str = "sparse_expert_textcat") -> spacy.Language:
    """Initialise and train a few steps with dropout, so the seed drives init and dropout."""
    fix_random_seed(seed)
    multilabel = factory.endswith("multilabel")
    nlp = make_nlp(factory, model=tiny_model(not multilabel, dropout=0.2))
    examples = make_examples(nlp, multilabel=multilabel)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(kb_dir),
                                       rules_loader=load_rules_v1(rules_path()))
    optimizer = nlp.resume_training()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer, drop=0.2)
    return nlp


def weights(nlp: spacy.Language) -> bytes:
    return state_to_bytes(torch_module(nlp.get_pipe("textcat").model))


@pytest.mark.parametrize("factory", ["sparse_expert_textcat", "sparse_expert_textcat_multilabel"])
def test_same_seed_same_weights_and_predictions(kb_dir: Path, factory: str) -> None:
    first, second = train(0, kb_dir, factory), train(0, kb_dir, factory)
    assert weights(first) == weights(second)
    assert [first(t).cats for t in TEXTS] == [second(t).cats for t in TEXTS]
    other = train(1, kb_dir, factory)
    assert weights(other) != weights(first)  # the comparison can fail: the seed matters


def test_round_trips_give_identical_cats(kb_dir: Path, tmp_path: Path) -> None:
    nlp = train(0, kb_dir)
    before = [nlp(t).cats for t in TEXTS]
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert [loaded(t).cats for t in TEXTS] == before
    assert weights(loaded) == weights(nlp)
    copy = make_nlp(model=tiny_model(dropout=0.2))
    copy.from_bytes(nlp.to_bytes())
    assert [copy(t).cats for t in TEXTS] == before
    resaved = tmp_path / "again"
    loaded.to_disk(resaved)  # saving what was loaded writes the same files
    kb_files = [f"kb/{name}" for name in storage.KB_FILES]
    for name in ("model", "cfg", "rules", *kb_files):
        assert (resaved / "textcat" / name).read_bytes() == (tmp_path / "nlp" / "textcat" / name).read_bytes()
