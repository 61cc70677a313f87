"""The zero-shot label prior (``label_prior``, features/label_prior.py): which KB names
speak for which label, that a right prior carries to knowledge ids the training never
showed, that a prior from noise costs nothing, and that the setting is checked, saved
and loaded."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_sparse_expert.errors import Errors
from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.features.label_prior import label_prior, name_words, words_match
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.settings import ModelSettingError
from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier
from spacy_sparse_expert.ml.torch.encoder import HashEncoder

from .test_knowledge_gate import N_HELD_OUT, N_LABELS, TOKENS, VOCAB, _accuracy, _inputs, _make_docs, _train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BBC = ["business", "entertainment", "politics", "sport", "tech"]


# --- matching names ------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [("sport", "sports"), ("tech", "technology"), ("politics", "political"),
                                 ("politics", "politician"), ("government", "governor"), ("film", "films"),
                                 ("finance", "financial"), ("entertainment", "entertainer")])
def test_words_of_one_topic_match(a: str, b: str) -> None:
    assert words_match(a, b) and words_match(b, a)


@pytest.mark.parametrize("a,b", [("positive", "position"), ("negative", "negation"), ("art", "artist"),
                                 ("tech", "technique"), ("organ", "organization"), ("sport", "sportsman")])
def test_words_of_other_topics_do_not(a: str, b: str) -> None:
    assert not words_match(a, b) and not words_match(b, a)


def test_name_words_drop_the_host_and_split_names() -> None:
    assert name_words("https://w3id.org/fb15k237/type/sports/sports_team") == ("sports", "sports", "team")
    assert name_words("http://schema.org/SportsTeam") == ("sports", "team")
    assert name_words("Sci/Tech") == ("sci", "tech")


def _featurizer(kb_dir: Path, labels: list[str]) -> KnowledgeFeaturizer:
    return KnowledgeFeaturizer(spacy.blank("en").vocab, KnowledgeBase.from_disk(kb_dir), None, labels=labels,
                               n_experts=4)


def test_shipped_kb_sport_means_sports_types(shipped_kb_dir: Path) -> None:
    prior = label_prior(_featurizer(shipped_kb_dir, BBC), BBC)
    sport = set(prior.matches["sport"])
    t = "type:https://w3id.org/fb15k237/type/"
    assert {t + "sports/sports_team", t + "sports/professional_sports_team", t + "sports/pro_athlete"} <= sport
    assert not any("/film/" in name or "/music/" in name for name in sport)
    assert t + "government/politician" in prior.matches["politics"]
    assert t + "business/business_operation" in prior.matches["business"]
    # FB15k-237 has no names for these two: they say nothing until described
    assert prior.unmatched() == ["entertainment", "tech"]
    column = prior.matrix[:, BBC.index("sport")]
    assert column.sum() == len(sport) and set(np.unique(column)) == {0.0, 1.0}
    described = label_prior(_featurizer(shipped_kb_dir, BBC), BBC, {"entertainment": "film music television"})
    assert t + "film/actor" in described.matches["entertainment"]
    assert t + "music/artist" in described.matches["entertainment"]


def test_shipped_kb_finds_nothing_for_sentiment_labels(shipped_kb_dir: Path) -> None:
    prior = label_prior(_featurizer(shipped_kb_dir, ["negative", "positive"]), ["negative", "positive"])
    assert prior.unmatched() == ["negative", "positive"]
    assert not prior.matrix.any()  # the knowledge bag starts at zero, as without a prior


# --- the prior in the classifier -------------------------------------------------------

N_IDS_PER_LABEL = 10  # ids [10 j, 10 j + 10) speak for label j: the first half in training, the rest held out


def _knowledge_docs(n_docs: int, seed: int, held_out: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Docs whose words say nothing about the label; a third of their tokens carry a
    knowledge id, of the label's own ids 80% of the time (else any id). Training docs
    draw from the first half of each label's ids, held-out docs from the second half:
    only a prior can know those. RETURNS words, labels, per-token knowledge id (-1: none)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_LABELS, (n_docs,), generator=g)
    words = torch.randint(0, VOCAB, (n_docs, TOKENS), generator=g)
    half = N_IDS_PER_LABEL // 2
    offset = half if held_out else 0
    own = labels[:, None] * N_IDS_PER_LABEL + offset + torch.randint(0, half, (n_docs, TOKENS), generator=g)
    other = torch.randint(0, N_LABELS, (n_docs, TOKENS), generator=g) * N_IDS_PER_LABEL + offset + torch.randint(
        0, half, (n_docs, TOKENS), generator=g)
    ids = torch.where(torch.rand(n_docs, TOKENS, generator=g) < 0.8, own, other)
    ids = torch.where(torch.rand(n_docs, TOKENS, generator=g) < 1 / 3, ids, torch.full_like(ids, -1))
    return words, labels, ids


def _with_ids(words: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> dict[str, object]:
    inputs = _inputs(words, labels, "off", seed=0)
    flat = ids.reshape(-1)
    has = flat >= 0
    inputs["know_ids"] = flat[has]
    inputs["know_offsets"] = torch.cumsum(has.long(), 0) - has.long()
    return inputs


def _bag_classifier(n_ids: int) -> MoEDocClassifier:
    torch.manual_seed(0)
    return MoEDocClassifier(HashEncoder(VOCAB, 16, depth=0, dropout=0.1), width=16, n_labels=N_LABELS,
                            n_experts=4, k=2, d_ff=16, bow_rows=0, n_knowledge_ids=n_ids, d_knowledge=4, dropout=0.0,
                            knowledge_bow=True, bow_scale=10.0, knowledge_gate=True, knowledge_dropout=0.25)


def _prior_matrix() -> torch.Tensor:
    return torch.eye(N_LABELS).repeat_interleave(N_IDS_PER_LABEL, dim=0)  # (n_ids, L): id -> its label


def test_a_right_prior_carries_to_knowledge_the_training_never_showed() -> None:
    """The learned table knows only the ids it was trained on; the prior also knows the
    held-out ones, and training on the others does not erase it."""
    train, held_out = _knowledge_docs(60, seed=0, held_out=False), _knowledge_docs(N_HELD_OUT, seed=1, held_out=True)
    scores = {}
    for strength in (0.0, 3.0):
        clf = _bag_classifier(N_LABELS * N_IDS_PER_LABEL)
        if strength:
            clf.set_knowledge_prior(_prior_matrix(), strength)
        _train(clf, _with_ids(*train), train[1], steps=60)
        scores[strength] = _accuracy(clf, _with_ids(*held_out), held_out[1])
    assert scores[0.0] < 0.45 < 0.7 < scores[3.0], scores  # chance is 1/3


def test_a_prior_from_noise_ends_no_worse_than_knowledge_off() -> None:
    """A prior that says nothing true about the labels (random ids -> random labels), on
    knowledge ids that are noise, as a KB named for other topics would give."""
    from .test_knowledge_gate import DEV, HELD_OUT, N_IDS, TRAIN, _classifier

    off = _classifier(gate=True)
    _train(off, _inputs(*TRAIN, "off", seed=2), TRAIN[1])
    knowledge_off = _accuracy(off, _inputs(*HELD_OUT, "off", seed=3), HELD_OUT[1])
    clf = _bag_classifier(N_IDS)
    g = torch.Generator().manual_seed(4)
    clf.set_knowledge_prior(torch.nn.functional.one_hot(torch.randint(0, N_LABELS, (N_IDS,), generator=g),
                                                        N_LABELS).float(), 3.0)
    _train(clf, _inputs(*TRAIN, "noise", seed=2), TRAIN[1])
    # the component's dev-set check: knowledge stays on only if it scores higher on dev
    dev = _inputs(*DEV, "noise", seed=4)
    with_knowledge = _accuracy(clf, dev, DEV[1])
    clf.knowledge_on = False
    clf.knowledge_on = with_knowledge > _accuracy(clf, dev, DEV[1])
    noise = _accuracy(clf, _inputs(*HELD_OUT, "noise", seed=3), HELD_OUT[1])
    margin = 2 * math.sqrt(knowledge_off * (1 - knowledge_off) / N_HELD_OUT)
    assert noise >= knowledge_off - margin, (noise, knowledge_off, margin, clf.knowledge_on)

