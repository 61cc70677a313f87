"""The component's own errors and warnings: used before initialize (SSE-E233, apart
from no labels at all, SSE-E030), two positive labels for exclusive classes (a data
error naming the example, SSE-E234), knowledge asked for and none given (SSE-W030,
once), and update(drop=...) that is not applied (SSE-W031, once)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from spacy.training import Example
from spacy.util import fix_random_seed

from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import LABELS, make_examples, make_nlp, rules_path, tiny_model


def sse_warnings(record: list, code: str) -> list:
    return [w for w in record if f"SSE-{code}" in str(w.message)]


# --- before initialize ------------------------------------------------------------------


def test_labels_but_no_initialize_has_its_own_error():
    nlp = make_nlp()
    textcat = nlp.get_pipe("textcat")
    for label in LABELS:
        textcat.add_label(label)
    with pytest.raises(ValueError, match=r"SSE-E233.*not initialized.*'business', 'politics', 'sport'"):
        nlp("Chelsea beat Arsenal.")
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match=r"SSE-E233"):
        nlp.update(examples)


def test_no_labels_still_says_no_labels():
    nlp = make_nlp()
    with pytest.raises(ValueError, match=r"SSE-E030.*no labels"):
        nlp("Chelsea beat Arsenal.")


def test_after_initialize_there_is_no_error():
    nlp = make_nlp()
    examples = make_examples(nlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W030: no knowledge given here on purpose
        nlp.initialize(lambda: examples)
    assert set(nlp("Chelsea beat Arsenal.").cats) == set(LABELS)


# --- two positive labels for exclusive classes ------------------------------------------


def two_positive(nlp, index: int = 2) -> list:
    examples = make_examples(nlp)
    doc = nlp.make_doc("Tony Blair met the bank bosses about the football club.")
    cats = {"business": 1.0, "politics": 1.0, "sport": 0.0}
    examples.insert(index, Example.from_dict(doc, {"cats": cats}))
    return examples


def test_two_positive_labels_at_initialize_name_the_example():
    nlp = make_nlp()
    examples = two_positive(nlp, index=2)
    with pytest.raises(ValueError) as err:
        nlp.initialize(lambda: examples)
    message = str(err.value)
    assert "SSE-E234" in message and "SSE-E033" not in message and "Config value" not in message
    assert "example 2 (of the examples given to initialize, counting from 0;" in message
    assert "Tony Blair met the bank bosses" in message
    assert "'business': 1.0, 'politics': 1.0" in message and "sparse_expert_textcat_multilabel" in message


def test_two_positive_labels_in_update_name_the_example():
    nlp = make_nlp()
    good = make_examples(nlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp.initialize(lambda: good)
    with pytest.raises(ValueError, match=r"SSE-E234.*example 4 \(of the batch given to update.*Tony Blair"):
        nlp.update(two_positive(nlp, index=4))


def test_a_long_text_is_shortened_in_the_message():
    nlp = make_nlp()
    examples = make_examples(nlp)
    doc = nlp.make_doc("word " * 100)
    examples.append(Example.from_dict(doc, {"cats": {"business": 1.0, "politics": 1.0, "sport": 0.0}}))
    with pytest.raises(ValueError, match=r"SSE-E234") as err:
        nlp.initialize(lambda: examples)
    assert "word " * 20 not in str(err.value) and "..." in str(err.value)


def test_multilabel_takes_two_positive_labels():
    nlp = make_nlp("sparse_expert_textcat_multilabel")
    examples = two_positive(nlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp.initialize(lambda: examples)
    nlp.update(examples)


# --- use_knowledge without knowledge -----------------------------------------------------


def test_knowledge_asked_for_and_none_given_warns_once():
    nlp = make_nlp()
    examples = make_examples(nlp)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nlp.initialize(lambda: examples)
        optimizer = nlp.create_optimizer()
        for _ in range(2):
            nlp.update(examples, sgd=optimizer)
        nlp("Chelsea beat Arsenal.")
    found = sse_warnings(record, "W030")
    assert len(found) == 1
    assert "'textcat'" in str(found[0].message) and "use_knowledge = false" in str(found[0].message)


@pytest.mark.parametrize("setting", ["rules given", "use_knowledge false"])
def test_no_warning_when_knowledge_is_given_or_not_wanted(setting):
    nlp = make_nlp(use_knowledge=setting != "use_knowledge false")
    examples = make_examples(nlp)
    textcat = nlp.get_pipe("textcat")
    rules = load_rules_v1(str(rules_path())) if setting == "rules given" else None
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        textcat.initialize(lambda: examples, nlp=nlp, rules_loader=rules)
    assert not sse_warnings(record, "W030")


# --- update(drop=...) ----------------------------------------------------------------------


def trained_weights(drop: float) -> tuple:
    fix_random_seed(0)
    nlp = make_nlp(use_knowledge=False, model=tiny_model(dropout=0.0))
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = nlp.create_optimizer()
    losses = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            step: dict = {}
            nlp.update(examples, sgd=optimizer, drop=drop, losses=step)
            losses.append(step["textcat"])
    module = torch_module(nlp.get_pipe("textcat").model)
    weights = np.concatenate([p.detach().numpy().ravel() for p in module.parameters()])
    return losses, weights, sse_warnings(record, "W031")


def test_drop_is_not_applied_and_says_so_once():
    losses, weights, quiet = trained_weights(0.0)
    losses_drop, weights_drop, warned = trained_weights(0.5)
    # the same run: the model's own dropout settings (0 here) decide, not drop
    assert losses_drop == pytest.approx(losses, abs=1e-6)
    np.testing.assert_allclose(weights_drop, weights, atol=1e-6)
    assert not quiet
    assert len(warned) == 1  # three updates, one warning
    assert "drop=0.5" in str(warned[0].message) and "dropout = 0.0" in str(warned[0].message)


def test_drop_equal_to_the_model_dropout_is_quiet():
    nlp = make_nlp(use_knowledge=False, model=tiny_model(dropout=0.1))
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nlp.update(examples, drop=0.1)
    assert not sse_warnings(record, "W031")
