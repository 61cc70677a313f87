"""The one input builder: knowledge computed earlier gives the same inputs as the
model's own featurizer, and a knowledge list that does not match the docs is refused."""
from __future__ import annotations

import numpy as np
import pytest

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.ml.inputs import build_inputs
from spacy_sparse_expert.pipeline.explain import explain
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import TRAIN_DATA, make_examples, make_nlp, rules_path

TEXTS = [text for text, _ in TRAIN_DATA] + ["", "Chelsea Chelsea Premier League Blair"]


@pytest.fixture(scope="module")
def nlp(kb_dir):
    nlp = make_nlp()
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                                       rules_loader=load_rules_v1(str(rules_path())))
    return nlp


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return a == b


def test_precomputed_knowledge_gives_the_same_inputs(nlp):
    textcat = nlp.get_pipe("textcat")
    docs = [nlp.make_doc(text) for text in TEXTS]
    known = [textcat.featurizer.analyse(doc)[0] for doc in docs]
    for start in range(len(docs)):
        part = docs[start:]
        assert _equal(build_inputs(textcat.model, part), build_inputs(textcat.model, part, knowledge=known[start:]))


@pytest.mark.parametrize("n_docs,n_knowledge", [(3, 2), (2, 3), (1, 0), (0, 1)])
def test_knowledge_for_other_docs_is_refused(nlp, n_docs, n_knowledge):
    textcat = nlp.get_pipe("textcat")
    docs = [nlp.make_doc(TEXTS[i % len(TEXTS)]) for i in range(n_docs)]
    known = [textcat.featurizer.analyse(nlp.make_doc("Chelsea"))[0]] * n_knowledge
    with pytest.raises(ValueError, match=rf"SSE-E160.*knowledge for {n_knowledge} docs but {n_docs} docs"):
        build_inputs(textcat.model, docs, knowledge=known)


def test_explaining_an_uninitialized_component_is_refused():
    nlp = make_nlp()
    with pytest.raises(ValueError, match=r"SSE-E161.*nlp.initialize"):
        explain(nlp.make_doc("Chelsea"), nlp.get_pipe("textcat"))
