"""The label prior in the component: set at initialize from the KB's type names (and
label_descriptions), warned about when a label matches nothing, checked, and kept by a
saved pipeline; pipelines saved before the setting existed load unchanged."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import spacy

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.ml.architectures import torch_module

from .conftest import LABELS, make_examples, make_nlp, tiny_model

TEXTS = ["Tony Blair spoke to Labour.", "Chelsea beat Arsenal.", "Vodafone shares rose.", "Nothing known here."]
EX = "type:http://example.org/"


def _init(kb_dir: Path, descriptions: dict | None = None, **model: object) -> spacy.language.Language:
    nlp = make_nlp(model=tiny_model(knowledge_bow=True, **model))
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                                       label_descriptions=descriptions)
    return nlp


def _prior_columns(nlp: spacy.language.Language) -> dict[str, set[str]]:
    """Per label, the knowledge ids whose starting weight is not zero."""
    textcat = nlp.get_pipe("textcat")
    table = torch_module(textcat.model).know_bow.detach().numpy()
    return {label: {textcat.featurizer.id_name(int(i)) for i in np.flatnonzero(table[:, j])}
            for j, label in enumerate(textcat.labels)}


def test_prior_starts_the_knowledge_bag_from_type_names(kb_dir: Path) -> None:
    with pytest.warns(UserWarning, match=re.escape("SSE-W080") + r".*\['business', 'sport'\]"):
        nlp = _init(kb_dir, label_prior=2.0)
    assert _prior_columns(nlp) == {"business": set(), "politics": {EX + "Party", EX + "Politician"}, "sport": set()}
    table = torch_module(nlp.get_pipe("textcat").model).know_bow.detach().numpy()
    assert set(np.unique(table)) == {0.0, 2.0}  # strength / bow_scale (1.0 in the tiny model)
    # before any training the knowledge bag already votes politics for a linked politician
    doc = nlp(TEXTS[0])
    assert max(doc.cats, key=doc.cats.get) == "politics"


def test_descriptions_name_what_label_names_do_not(kb_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*SSE-W080")  # every label matches something
        nlp = _init(kb_dir, {"sport": "football clubs", "business": "companies"}, label_prior=2.0)
    columns = _prior_columns(nlp)
    assert columns["sport"] == {EX + "FootballClub"} and columns["business"] == {EX + "Company"}


def test_no_prior_by_default(kb_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*SSE-W080")
        nlp = _init(kb_dir)
    assert nlp.get_pipe("textcat").model.attrs["settings"]["label_prior"] == 0.0
    assert not torch_module(nlp.get_pipe("textcat").model).know_bow.detach().any()


def test_prior_needs_the_knowledge_bag() -> None:
    with pytest.raises(ValueError, match=re.escape("SSE-E290") + r".*knowledge_bow = true"):
        make_nlp(model=tiny_model(label_prior=1.0))


@pytest.mark.parametrize("value", [-1.0, 1000.0, "strong", True])
def test_bad_prior_strength(value: object) -> None:
    with pytest.raises(ValueError, match=re.escape("SSE-E115") + r".*label_prior"):
        make_nlp(model=tiny_model(knowledge_bow=True, label_prior=value))


@pytest.mark.parametrize("descriptions,reason", [
    ({"Sport": "football"}, "'Sport' is not a label"),
    ({"sport": "  "}, "the description of 'sport'"),
    ({"sport": 3}, "the description of 'sport'"),
])
def test_bad_descriptions(kb_dir: Path, descriptions: dict, reason: str) -> None:
    nlp = make_nlp(model=tiny_model(knowledge_bow=True, label_prior=1.0))
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match=re.escape("SSE-E291") + ".*" + re.escape(reason)):
        nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                                           label_descriptions=descriptions)


def test_prior_setting_round_trips_and_old_configs_load(kb_dir: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="SSE-W080"):
        nlp = _init(kb_dir, label_prior=2.0)
    examples = make_examples(nlp)
    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    cats = [nlp(text).cats for text in TEXTS]
    nlp.to_disk(tmp_path / "new")
    loaded = spacy.load(tmp_path / "new")
    assert loaded.config["components"]["textcat"]["model"]["label_prior"] == 2.0
    assert [loaded(text).cats for text in TEXTS] == [pytest.approx(c, abs=1e-6) for c in cats]
    # a pipeline saved before label_prior existed has no such line: the default (no
    # prior, used only at initialize anyway) fills it and the weights load as they are
    config = tmp_path / "new" / "config.cfg"
    text = config.read_text(encoding="utf8")
    assert "label_prior = 2.0\n" in text
    config.write_text(text.replace("label_prior = 2.0\n", ""), encoding="utf8")
    old = spacy.load(tmp_path / "new")
    assert old.config["components"]["textcat"]["model"]["label_prior"] == 0.0
    assert [old(text).cats for text in TEXTS] == [pytest.approx(c, abs=1e-6) for c in cats]
    assert sorted(old.get_pipe("textcat").labels) == LABELS
