"""The dev-set knowledge check: in training, each evaluation predicts the dev examples
with and without the knowledge inputs and keeps knowledge on only if it scores higher;
the choice and both scores are saved with the pipeline, and a loaded pipeline never
re-checks (so `spacy evaluate` on a test set cannot change it)."""
from __future__ import annotations

from typing import List

import pytest
import spacy
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.training import Example

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import LABELS, make_examples, make_nlp, rules_path

DEV = [
    ("Arsenal lost to Chelsea in the Premier League.", "sport"),
    ("Tony Blair and Labour won the vote.", "politics"),
    ("Vodafone profits fell and shares dropped.", "business"),
    ("The goalkeeper was sent off in the second half.", "sport"),
    ("The minister resigned after the debate.", "politics"),
    ("Interest rates rose and the bank raised forecasts.", "business"),
]


def _dev(nlp: Language) -> List[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"cats": {label: float(label == gold) for label in LABELS}})
            for text, gold in DEV]


def _trained(kb_dir, **config: object) -> Language:
    nlp = make_nlp(**config)
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                                       rules_loader=load_rules_v1(str(rules_path())))
    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    return nlp


def _score_with(nlp: Language, on: bool) -> float:
    textcat = nlp.get_pipe("textcat")
    saved = textcat.cfg["knowledge_check"]
    textcat.cfg["knowledge_check"] = {"on": on}
    examples = _dev(nlp)
    for eg, doc in zip(examples, nlp.pipe([eg.reference.text for eg in examples])):
        eg.predicted = doc
    textcat.cfg["knowledge_check"] = saved
    return float(Scorer.score_cats(examples, "cats", labels=LABELS, multi_label=False)["cats_score"])


def test_evaluation_after_training_records_and_applies_the_check(kb_dir) -> None:
    nlp = _trained(kb_dir)
    textcat = nlp.get_pipe("textcat")
    assert textcat.cfg["knowledge_check"] is None and textcat.knowledge_on
    scores = nlp.evaluate(_dev(nlp))
    check = textcat.cfg["knowledge_check"]
    assert check["metric"] == "cats_score"
    # the recorded scores are those of predicting the dev set each way
    assert check["with"] == pytest.approx(_score_with(nlp, True), abs=1e-6)
    assert check["without"] == pytest.approx(_score_with(nlp, False), abs=1e-6)
    assert check["on"] is (check["with"] > check["without"]) and textcat.knowledge_on is check["on"]
    # the evaluation reports the setting it kept
    assert scores["cats_score"] == pytest.approx(check["with"] if check["on"] else check["without"], abs=1e-6)
    # no update since: the next evaluation does not check again
    textcat.cfg["knowledge_check"] = {**check, "on": not check["on"]}
    nlp.evaluate(_dev(nlp))
    assert textcat.cfg["knowledge_check"]["on"] is (not check["on"])
    # an update arms it again
    nlp.update(make_examples(nlp))
    nlp.evaluate(_dev(nlp))
    assert set(textcat.cfg["knowledge_check"]) == {"on", "metric", "with", "without"}


def test_the_choice_is_saved_and_a_loaded_pipeline_never_rechecks(kb_dir, tmp_path) -> None:
    nlp = _trained(kb_dir)
    nlp.evaluate(_dev(nlp))
    textcat = nlp.get_pipe("textcat")
    # store the setting that lost, so a re-check would be seen to undo it
    losing = {**textcat.cfg["knowledge_check"], "on": not textcat.knowledge_on}
    textcat.cfg["knowledge_check"] = losing
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert loaded.get_pipe("textcat").cfg["knowledge_check"] == pytest.approx(losing)
    texts = [text for text, _ in DEV]
    assert [d.cats for d in loaded.pipe(texts)] == [d.cats for d in nlp.pipe(texts)]
    loaded.evaluate(_dev(loaded))
    assert loaded.get_pipe("textcat").cfg["knowledge_check"] == pytest.approx(losing)


@pytest.mark.parametrize("config", [{"check_knowledge": False}, {"use_knowledge": False}])
def test_no_check_without_knowledge_or_when_turned_off(kb_dir, config) -> None:
    nlp = _trained(kb_dir, **config)
    nlp.evaluate(_dev(nlp))
    textcat = nlp.get_pipe("textcat")
    assert textcat.cfg["knowledge_check"] is None and textcat.knowledge_on
