"""knowledge/rules/sentiment.jsonl: the VADER lexicon rules load, validate, give the evidence
their scores promise on real review sentences (negation included), and are what
knowledge/build_sentiment_rules.py writes."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import spacy

from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.rules.rules import RuleSet, check_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "knowledge" / "rules" / "sentiment.jsonl"
BUILD = ROOT / "knowledge" / "build_sentiment_rules.py"
LABELS = ("negative", "positive")


NLP = spacy.blank("en")


@pytest.fixture(scope="module")
def featurizer() -> KnowledgeFeaturizer:
    return KnowledgeFeaturizer(NLP.vocab, None, RuleSet.from_file(RULES), labels=LABELS, n_experts=4)


def evidence(featurizer: KnowledgeFeaturizer, text: str) -> dict[str, float]:
    knowledge, _ = featurizer.analyse(NLP.make_doc(text))
    return {label: float(v) for label, v in zip(LABELS, knowledge.label_bias)}


def hit_ids(featurizer: KnowledgeFeaturizer, text: str) -> list[str]:
    _, annotations = featurizer.analyse(NLP.make_doc(text))
    return sorted(rule_id for rule_id, _, _ in annotations.rule_hits)


def test_rule_file_validates_against_the_sentiment_labels_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # W020 would mean a pattern left spaCy's Matcher
        assert check_rules(RULES, labels=list(LABELS)) == []
    rules = RuleSet.from_file(RULES, labels=list(LABELS))
    assert rules.labels == list(LABELS)
    words = [r for r in rules if not r.id.endswith("-negated")]
    negated = [r for r in rules if r.id.endswith("-negated")]
    assert len(words) == len(negated) > 10
    assert {f"{r.id}-negated" for r in words} == {r.id for r in negated}
    # every word rule names exactly one label, scored with its bucket's VADER valence
    for rule in words:
        ((label, score),) = rule.labels.items()
        assert label in LABELS and 0 < score <= 4, rule.id
        assert rule.id == f"vader-{label}-{score:.1f}"


@pytest.mark.parametrize("text", ["Crust is not good.", "It was not good.", "Not good for the money."])
def test_negated_positive_word_gives_negative_evidence(featurizer: KnowledgeFeaturizer, text: str) -> None:
    got = evidence(featurizer, text)
    assert got["negative"] > 0
    assert got["positive"] == pytest.approx(0.0, abs=1e-6)  # the word's own evidence is cancelled
    assert hit_ids(featurizer, text) == ["vader-positive-2.0", "vader-positive-2.0-negated"]


def test_unnegated_words_keep_their_polarity(featurizer: KnowledgeFeaturizer) -> None:
    # yelp sentences: a positive word, and the same word's negation, scored with VADER's -0.74
    plain = evidence(featurizer, "The food was good.")
    assert plain["positive"] == pytest.approx(2.0) and plain["negative"] == 0  # VADER: good = 1.9
    negated = evidence(featurizer, "The food was not good.")
    assert negated["negative"] == pytest.approx(0.74 * 2.0)
    # a negated negative word turns positive (imdb, labelled positive); as in VADER the
    # negator also reaches "well" three tokens on, which costs less than "bad" gives
    flipped = evidence(featurizer, "The last 15 minutes of movie are also not bad as well.")
    assert flipped["positive"] == pytest.approx(0.74 * 2.5)  # bad = -2.5
    assert flipped["negative"] == pytest.approx(0.74 * 1.0)  # well = 1.1


def test_contractions_and_scope_of_negation(featurizer: KnowledgeFeaturizer) -> None:
    # "didn't" splits into "did" + "n't" (NORM "not"); one token may stand between
    assert evidence(featurizer, "Another thing I didn't really like is the button.")["negative"] > 0
    # a comma closes the negation's scope: "never" does not reach "good"
    assert hit_ids(featurizer, "Never, good.") == ["vader-positive-2.0"]
    # two negators in a row flip the word once, not twice
    once = evidence(featurizer, "It is not never good.")
    assert once == evidence(featurizer, "It is never good.")
    # the scope is three tokens back at most
    assert evidence(featurizer, "Not that it was ever good.")["positive"] > 0


def test_evidence_separates_the_labels_on_the_training_data(featurizer: KnowledgeFeaturizer) -> None:
    """On real labelled sentences the evidence alone is far better than chance: a rule file
    whose scores pointed the wrong way (or whose negation did nothing) would fail this."""
    data = ROOT.parent / "shared" / "data" / "sentiment_sentences" / "yelp_labelled.txt"
    if not data.exists():
        pytest.skip(f"{data} not found")
    lines = [line.rsplit("\t", 1) for line in data.read_text(encoding="utf8").splitlines()[:300] if line.strip()]
    gold = np.array([int(score) for _, score in lines])
    scores = [evidence(featurizer, text) for text, _ in lines]
    margin = np.array([s["positive"] - s["negative"] for s in scores])
    decided = margin != 0
    accuracy = float(((margin[decided] > 0) == (gold[decided] == 1)).mean())
    assert decided.mean() > 0.7 and accuracy > 0.75


def test_build_script_reproduces_the_shipped_file(tmp_path: Path) -> None:
    pytest.importorskip("vaderSentiment")
    out = tmp_path / "sentiment.jsonl"
    subprocess.run([sys.executable, str(BUILD), "--output", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == RULES.read_bytes(), "rebuild: python knowledge/build_sentiment_rules.py"
