"""An explanation is the model's own arithmetic: the contributions it shows (each
learned path, and each rule's share of the rules' part) sum to the model's logits for
every label, and those logits give ``doc.cats``. Both factories, a KB and rules, and
generated documents that hit no rule, one rule, or the same rule several times."""
from __future__ import annotations

from typing import Dict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.pipeline.explain import explain, render_explanation

from .conftest import make_examples, make_nlp, rules_path, tiny_model

PHRASES = ["Chelsea", "Arsenal", "Premier League", "Tony Blair", "Gordon Brown", "Labour", "Vodafone", "London",
           "beat", "the", "minister", "shares", "rose", "in", "and", ".", "goal", "premier league", "Blair"]
MODELS = {
    "exclusive": ("sparse_expert_textcat", {"knowledge_bow": True}),
    "multilabel": ("sparse_expert_textcat_multilabel", {"knowledge_bow": True}),
    "exclusive, no n-gram path": ("sparse_expert_textcat", {"bow_rows": 0, "n_moe_layers": 2}),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained(request: pytest.FixtureRequest, kb_dir) -> Language:
    factory, overrides = MODELS[request.param]
    exclusive = factory == "sparse_expert_textcat"
    nlp = make_nlp(factory, model=tiny_model(exclusive, **overrides))
    examples = make_examples(nlp, multilabel=not exclusive)
    textcat = nlp.get_pipe("textcat")
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                       rules_loader=load_rules_v1(str(rules_path())))
    optimizer = nlp.create_optimizer()
    for _ in range(4):  # move the rule scale and the linear paths off their initial values
        nlp.update(examples, sgd=optimizer)
    return nlp


def _activation(logits: np.ndarray, exclusive: bool) -> np.ndarray:
    if exclusive:
        e = np.exp(logits - logits.max())
        return e / e.sum()
    return 1.0 / (1.0 + np.exp(-logits))


def _check(nlp: Language, text: str) -> Dict[str, float]:
    textcat = nlp.get_pipe("textcat")
    doc = nlp(text)
    ex = explain(doc, textcat)
    assert ex.labels == textcat.labels
    assert set(ex.contributions) >= {"experts", "rules"}
    assert ("ngrams" in ex.contributions) == (textcat.model.attrs["bow_rows"] > 0)
    cats = np.array([doc.cats[label] for label in ex.labels])
    assert np.allclose(_activation(ex.logits.astype(np.float64), textcat.cfg["exclusive"]), cats, atol=1e-5)
    shares_per_label = {}
    for j, label in enumerate(ex.labels):
        shares = sum(value for _, value in ex.rule_shares.get(label, []))
        shown = sum(float(part[j]) for name, part in ex.contributions.items() if name != "rules") + shares
        assert shown == pytest.approx(float(ex.logits[j]), abs=1e-4), (text, label, ex)
        assert shares == pytest.approx(float(ex.contributions["rules"][j]), abs=1e-4)
        shares_per_label[label] = shares
    hit_ids = {rule_id for rule_id, _, _ in doc._.rule_hits}
    assert {rule_id for parts in ex.rule_shares.values() for rule_id, _ in parts} <= hit_ids
    return shares_per_label


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(PHRASES), min_size=0, max_size=25))
def test_shown_contributions_sum_to_logits(trained: Language, words) -> None:
    _check(trained, " ".join(words))


def test_rules_that_hit_have_their_share(trained: Language) -> None:
    # two rules vote "sport" (a KB type and a phrase), the KB-type rule twice
    shares = trained.get_pipe("textcat")
    ex = explain(trained("Chelsea beat Arsenal in the Premier League."), shares)
    sport = dict(ex.rule_shares["sport"])
    assert set(sport) == {"sport-club", "sport-league"}
    # b = 2 (club, twice) + 1 (league): the club rule carries two thirds of the part
    assert sport["sport-club"] == pytest.approx(2 * sport["sport-league"], rel=1e-5)
    assert sum(sport.values()) == pytest.approx(float(ex.contributions["rules"][ex.labels.index("sport")]), abs=1e-6)
    assert float(ex.contributions["rules"][ex.labels.index("business")]) == 0.0
    _check(trained, "Chelsea beat Arsenal in the Premier League.")


def test_explain_writes_nothing_and_html_shows_the_parts(trained: Language) -> None:
    textcat = trained.get_pipe("textcat")
    doc = trained.make_doc("Tony Blair met Vodafone bosses in London.")
    explain(doc, textcat)
    assert doc.cats == {} and not doc.spans.get("kb_entities")
    page = render_explanation(trained("Tony Blair met Vodafone bosses in London."), textcat)
    assert "politics-politician" in page and "experts " in page.replace("experts +", "experts ")
