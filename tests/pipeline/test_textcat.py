"""The components end to end: training, prediction, routing, knowledge, serialization."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spacy
from safetensors.numpy import load_file
from spacy.training import Example
from spacy.util import make_tempdir

from spacy_sparse_expert.errors import Errors
from spacy_sparse_expert.features.features import DocKnowledge
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import LABELS, TRAIN_DATA, make_examples, make_nlp, rules_path, tiny_model

TEST_TEXTS = [text for text, _ in TRAIN_DATA]


def _train(nlp, examples, n_iter=40, **init_kwargs):
    optimizer = nlp.initialize(lambda: examples, **init_kwargs)
    history = []
    for _ in range(n_iter):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses["textcat"])
    return history


def _init_knowledge(nlp, kb_dir, examples, *, rules=True):
    textcat = nlp.get_pipe("textcat")
    textcat.initialize(
        lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
        rules_loader=load_rules_v1(str(rules_path()) if rules else None),
    )
    return textcat


def test_overfitting_IO():
    """Overfit tiny data, then save, reload, same predictions; batch == single."""
    nlp = make_nlp()
    examples = make_examples(nlp)
    history = _train(nlp, examples, n_iter=40)
    assert history[-1] < history[0] * 0.25
    for text, label in TRAIN_DATA:
        cats = nlp(text).cats
        assert max(cats, key=cats.get) == label
        assert sum(cats.values()) == pytest.approx(1.0, abs=1e-4)
    scores = nlp.evaluate(examples)
    assert scores["cats_macro_f"] == 1.0
    assert scores["cats_score"] == 1.0
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
        for text in TEST_TEXTS:
            assert nlp2(text).cats == pytest.approx(nlp(text).cats, abs=1e-5)
    batch = [doc.cats for doc in nlp.pipe(TEST_TEXTS, batch_size=6)]
    single = [nlp(text).cats for text in TEST_TEXTS]
    for b, s in zip(batch, single):
        assert b == pytest.approx(s, abs=1e-5)


def test_overfitting_multilabel():
    nlp = make_nlp("sparse_expert_textcat_multilabel")
    examples = make_examples(nlp, multilabel=True)
    history = _train(nlp, examples, n_iter=80)
    assert history[-1] < history[0] * 0.2
    for eg in examples:
        cats = nlp(eg.reference.text).cats
        for label, gold in eg.reference.cats.items():
            assert (cats[label] >= 0.5) == bool(gold), (eg.reference.text, cats)
    assert nlp.evaluate(examples)["cats_macro_f"] == 1.0


def test_routing_weights_sum_to_one_and_k_experts():
    nlp = make_nlp(store_routing=True)
    nlp.initialize(lambda: make_examples(nlp))
    for doc in nlp.pipe(TEST_TEXTS):
        assert len(doc._.routing) == len(doc)
        for i, (token_i, experts, weights) in enumerate(doc._.routing):
            assert token_i == i
            assert len(experts) == len(set(experts)) == 2
            assert all(0 <= e < 4 for e in experts)
            assert sum(weights) == pytest.approx(1.0, abs=1e-5)


def test_no_routing_unless_asked():
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    assert nlp(TEST_TEXTS[0])._.routing is None


def _zeroed(featurizer):
    """The same featurizer with every knowledge input zeroed (shapes kept)."""

    def pipe(docs):
        out = []
        for dk in featurizer.__class__.pipe(featurizer, docs):
            n = len(dk.ids_indptr) - 1
            out.append(DocKnowledge(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros_like(dk.dense),
                                    np.zeros_like(dk.expert_bias), np.zeros_like(dk.label_bias), dk.linked))
        return out

    return pipe


def test_knowledge_bias_changes_routing_only_for_linked_tokens(kb_dir):
    nlp = make_nlp(store_routing=True)
    examples = make_examples(nlp)
    textcat = _init_knowledge(nlp, kb_dir, examples)
    text = "Chelsea beat Arsenal while fans sang and Tony Blair watched."
    with_knowledge = nlp(text)
    linked = {i for span in with_knowledge._.kb_entities for i in range(span.start, span.end)}
    assert {0, 2} <= linked  # the two clubs
    featurizer = textcat.featurizer
    featurizer.pipe = _zeroed(featurizer)
    without = nlp(text)
    del featurizer.pipe
    for (i, experts_k, weights_k), (_, experts_0, weights_0) in zip(with_knowledge._.routing, without._.routing):
        if i in (0, 2):
            # the rule `sport-club` adds +4 to expert 0's logit of football clubs
            assert experts_k[0] == 0
            assert experts_k != experts_0 or not np.allclose(weights_k, weights_0, atol=1e-3)
        elif i not in linked:
            assert experts_k == experts_0
            assert weights_k == pytest.approx(weights_0, abs=1e-6)


def test_use_knowledge_false(kb_dir):
    nlp = make_nlp(use_knowledge=False)
    examples = make_examples(nlp)
    textcat = _init_knowledge(nlp, kb_dir, examples)
    assert textcat.kb is None and textcat.rules is None
    doc = nlp("Chelsea beat Arsenal in the Premier League.")
    assert not doc._.kb_entities
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        assert not (tmp / "textcat" / "kb").exists()
        assert spacy.load(tmp)(doc.text).cats == pytest.approx(doc.cats, abs=1e-5)


def test_knowledge_shapes_the_model(kb_dir):
    """Same model config; with knowledge the router sees a larger id space."""
    on, off = make_nlp(), make_nlp(use_knowledge=False)
    _init_knowledge(on, kb_dir, make_examples(on))
    _init_knowledge(off, kb_dir, make_examples(off))
    assert on.get_pipe("textcat").cfg["n_knowledge_ids"] > off.get_pipe("textcat").cfg["n_knowledge_ids"]


def test_empty_and_whitespace_docs():
    nlp = make_nlp(store_routing=True)
    nlp.initialize(lambda: make_examples(nlp))
    docs = list(nlp.pipe(["", "   ", "\n\n", TEST_TEXTS[0], ""]))
    for doc in docs:
        assert set(doc.cats) == set(LABELS)
        assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
    assert docs[0]._.routing == []
    assert docs[3].cats == pytest.approx(nlp(TEST_TEXTS[0]).cats, abs=1e-5)


def test_update_with_empty_docs():
    nlp = make_nlp()
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    empty = make_examples(nlp)[:1]
    empty[0].predicted = nlp.make_doc("")
    losses = nlp.update(empty + examples[1:], sgd=optimizer)
    assert np.isfinite(losses["textcat"])


def test_long_doc(kb_dir):
    nlp = make_nlp(store_routing=True)
    _init_knowledge(nlp, kb_dir, make_examples(nlp))
    text = " ".join([TEST_TEXTS[0]] * 2000)  # ~24k tokens
    doc = nlp(text)
    assert len(doc) > 20000
    assert len(doc._.routing) == len(doc)
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)


def test_to_bytes_from_bytes_with_knowledge(kb_dir):
    nlp = make_nlp()
    examples = make_examples(nlp)
    _init_knowledge(nlp, kb_dir, examples)
    optimizer = nlp.resume_training()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    data = nlp.to_bytes()
    nlp2 = make_nlp()
    nlp2.from_bytes(data)
    textcat2 = nlp2.get_pipe("textcat")
    assert textcat2.labels == tuple(LABELS)
    assert textcat2.kb is not None and len(textcat2.rules) == 3
    for text in TEST_TEXTS:
        doc1, doc2 = nlp(text), nlp2(text)
        assert doc2.cats == pytest.approx(doc1.cats, abs=1e-6)
        assert [s.text for s in doc2._.kb_entities] == [s.text for s in doc1._.kb_entities]


def test_to_disk_layout_needs_no_source_files(kb_dir, tmp_path):
    nlp = make_nlp()
    examples = make_examples(nlp)
    _init_knowledge(nlp, kb_dir, examples)
    nlp.to_disk(tmp_path / "pipeline")
    folder = tmp_path / "pipeline" / "textcat"
    assert {"cfg", "model", "kb", "rules"} <= {p.name for p in folder.iterdir()}
    weights = load_file(str(folder / "model"))  # plain safetensors
    assert any(name.startswith("moe.0.router") for name in weights)
    nlp2 = spacy.load(tmp_path / "pipeline")
    doc = nlp2("Chelsea beat Arsenal.")
    assert [s.text for s in doc._.kb_entities] == ["Chelsea", "Arsenal"]
    assert doc.cats == pytest.approx(nlp("Chelsea beat Arsenal.").cats, abs=1e-6)


def test_corrupt_weights_give_coded_error(tmp_path):
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path)
    (tmp_path / "textcat" / "model").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"SSE-E032"):
        spacy.load(tmp_path)


def test_n_process_2():
    nlp = make_nlp(store_routing=True)
    nlp.initialize(lambda: make_examples(nlp))
    texts = TEST_TEXTS * 4
    single = [doc.cats for doc in nlp.pipe(texts)]
    multi = list(nlp.pipe(texts, n_process=2, batch_size=4))
    assert len(multi) == len(texts)
    for doc, cats in zip(multi, single):
        assert doc.cats == pytest.approx(cats, abs=1e-5)
        assert len(doc._.routing) == len(doc)


def test_no_labels_raises():
    nlp = make_nlp()
    unlabelled = [Example(nlp.make_doc(TEST_TEXTS[0]), nlp.make_doc(TEST_TEXTS[0]))]
    with pytest.raises(ValueError, match=r"SSE-E030"):
        nlp.initialize(lambda: unlabelled)


def test_multiple_positive_labels_rejected_for_exclusive():
    nlp = make_nlp()
    examples = make_examples(nlp, multilabel=True)
    # a data error naming the example (tests/pipeline/test_component_errors.py), not a config error
    with pytest.raises(ValueError, match=r"SSE-E234.*example 1 "):
        nlp.initialize(lambda: examples)


def test_rule_with_unknown_expert_raises(kb_dir, tmp_path):
    rules = tmp_path / "rules.jsonl"
    rules.write_text('{"id": "x", "phrase": "league", "experts": {"7": 1.0}}\n', encoding="utf8")
    nlp = make_nlp()
    textcat = nlp.get_pipe("textcat")
    with pytest.raises(ValueError, match=r"SSE-E031"):
        textcat.initialize(lambda: make_examples(nlp), nlp=nlp, rules_loader=load_rules_v1(str(rules)))


def test_aux_losses_reach_the_loss():
    nlp = make_nlp(load_balancing_weight=1.0, z_loss_weight=0.0)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    textcat = nlp.get_pipe("textcat")
    # the aux losses of the update's own forward pass (the tiny model has no dropout)
    balance = float(textcat.model.predict([eg.predicted for eg in examples]).aux_losses[0])
    losses = nlp.update(examples, sgd=optimizer)
    assert balance >= 1.0 - 1e-4  # E * sum f_e P_e >= 1, the minimum is balanced routing
    assert losses["textcat"] > balance


def test_capacity_factor_and_mean_max_pooling():
    nlp = make_nlp(model=tiny_model(capacity_factor=1.0, pooling="mean_max", n_moe_layers=2))
    history = _train(nlp, make_examples(nlp), n_iter=25)
    assert history[-1] < history[0]


def test_bad_model_config_value():
    with pytest.raises(ValueError, match=r"SSE-E115.*k=5"):
        make_nlp(model=tiny_model(k=5))


@pytest.mark.parametrize("path", [Path("/nonexistent/kb")])
def test_kb_loader_missing_dir(path):
    with pytest.raises(ValueError, match=r"SSE-E009"):
        load_kb_v1(str(path))(spacy.blank("en").vocab)


def test_null_loaders_give_none():
    vocab = spacy.blank("en").vocab
    assert load_kb_v1(None)(vocab) is None
    assert load_rules_v1(None)(vocab) is None
    assert Errors.E030  # the coded messages format
