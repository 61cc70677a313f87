"""The output-contract redesign changed no figure: the seeded run of both components
(``behaviour.py``) gives the scores, losses and routing recorded before it, to 1e-5.
Scores after initialize check the forward pass; the losses and scores after five
updates check that the gradient reaching the weights is the same."""
from __future__ import annotations

import json

import pytest

from .behaviour import FACTORIES, FIXTURE, run


@pytest.mark.parametrize("factory", FACTORIES)
def test_same_scores_losses_and_routing(factory, kb_dir):
    expected = json.loads(FIXTURE.read_text(encoding="utf8"))[factory]
    got = run(factory, kb_dir)
    for key in ("before", "after"):
        assert len(got[key]) == len(expected[key])
        for cats, want in zip(got[key], expected[key]):
            assert cats == pytest.approx(want, abs=1e-5), key
    assert got["losses"] == pytest.approx(expected["losses"], abs=1e-5)
    for doc_routing, want in zip(got["routing"], expected["routing"]):
        assert [i for i, _, _ in doc_routing] == [i for i, _, _ in want]
        # per token expert -> weight: two experts within rounding of a tie may swap places
        for (_, experts, weights), (_, want_experts, want_weights) in zip(doc_routing, want):
            assert dict(zip(experts, weights)) == pytest.approx(dict(zip(want_experts, want_weights)), abs=1e-5)
