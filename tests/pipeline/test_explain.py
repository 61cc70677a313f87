"""HTML explanation and expert-load plot."""
from __future__ import annotations

import numpy as np
import pytest

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.pipeline.explain import expert_load, plot_expert_load, render_explanation

from .conftest import make_examples, make_nlp, rules_path


@pytest.fixture
def nlp_with_knowledge(kb_dir):
    nlp = make_nlp(store_routing=True)
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                                       rules_loader=load_rules_v1(str(rules_path())))
    return nlp


def test_render_explanation(nlp_with_knowledge):
    nlp = nlp_with_knowledge
    doc = nlp("Chelsea beat Arsenal in the Premier League <b>.")
    html = render_explanation(doc, nlp.get_pipe("textcat"))
    assert "http://example.org/ChelseaFC" in html
    assert "sport-club" in html and "sport-league" in html
    assert "experts " in html
    assert "<b>." not in html  # text is escaped


def test_expert_load_and_png(nlp_with_knowledge, tmp_path):
    pytest.importorskip("matplotlib")
    docs = list(nlp_with_knowledge.pipe(["Chelsea beat Arsenal.", "Tony Blair spoke.", "Shares fell."]))
    labels, matrix = expert_load(docs, n_experts=4)
    assert matrix.shape == (len(labels), 4)
    assert np.allclose(matrix.sum(1), 1.0)
    path = plot_expert_load(docs, tmp_path / "load.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
