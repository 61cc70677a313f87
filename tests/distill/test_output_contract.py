"""Distillation as a user of ml/: it reads the classifier's logits, router logits and
aux losses from its typed output, builds inputs with the component's builder, and
trains with one ``loss.backward()``; the numbers are those of the component."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch

from spacy_sparse_expert.distill.config import DistillSettings
from spacy_sparse_expert.distill.data import Features, gold_arrays, teacher_view
from spacy_sparse_expert.distill.loss import distill_loss
from spacy_sparse_expert.distill.trainer import Targets, fit, predict_scores
from spacy_sparse_expert.ml.architectures import torch_module

from .conftest import LABELS, TRAIN, UNLABELLED

TEXTS = [text for text, _ in TRAIN] + UNLABELLED


def _recovered(logits: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """What distillation used to train on: logits recovered from probabilities."""
    p = (logits.softmax(-1) if exclusive else logits.sigmoid()).double().clamp(1e-30, 1.0)
    return p.log() if exclusive else p.log() - (1.0 - p).clamp_min(1e-30).log()


@pytest.mark.parametrize("exclusive", [True, False])
def test_loss_on_logits_equals_loss_on_recovered_logits(exclusive: bool) -> None:
    for seed in range(25):  # a family of batches, scales up to saturation-free 6
        g = torch.Generator().manual_seed(seed)
        b, n_labels = 1 + seed % 5, 2 + seed % 4
        logits = (torch.randn(b, n_labels, generator=g) * (1 + seed % 6)).double()
        teacher = torch.randn(b, n_labels, generator=g).double() * 3
        gold = torch.zeros(b, n_labels, dtype=torch.float64)
        gold[torch.arange(b), torch.randint(n_labels, (b,), generator=g)] = 1.0
        mask, has_gold = torch.ones_like(gold), torch.rand(b, generator=g) > 0.3
        kw = dict(alpha=0.3, temperature=2.0, exclusive=exclusive)
        direct = logits.clone().requires_grad_()
        old = _recovered(logits, exclusive).requires_grad_()
        new_loss = distill_loss(direct, teacher, gold, mask, has_gold, **kw).total
        old_loss = distill_loss(old, teacher, gold, mask, has_gold, **kw).total
        new_loss.backward()
        old_loss.backward()
        assert new_loss.item() == pytest.approx(old_loss.item(), abs=1e-6)
        torch.testing.assert_close(direct.grad, old.grad, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def teacher(teacher_dir: Path):
    nlp = spacy.load(teacher_dir)
    return nlp, nlp.get_pipe("textcat")


def test_teacher_view_logits_are_the_components_predictions(teacher) -> None:
    nlp, pipe = teacher
    docs = [nlp.make_doc(text) for text in TEXTS]
    view = teacher_view(pipe.model, docs, batch_size=4, with_router=True)
    probs = torch.from_numpy(view.logits).softmax(-1).numpy()
    cats = np.array([[nlp(text).cats[label] for label in pipe.labels] for text in TEXTS])
    np.testing.assert_allclose(probs, cats, atol=1e-5)
    # the same through the precomputed-knowledge path of the input builder
    np.testing.assert_allclose(predict_scores(torch_module(pipe.model), Features(pipe.model, docs)), cats,
                               atol=1e-5)
    module = torch_module(pipe.model)
    assert [r.shape for r in view.router_logits] == [(len(doc), module.n_experts) for doc in docs]
    assert view.importance is not None and view.importance.tokens == sum(len(doc) for doc in docs)


def _fit_once(pipe, docs, aux_weights, router_weight: float = 0.0):
    module = copy.deepcopy(torch_module(pipe.model))
    view = teacher_view(pipe.model, docs, with_router=router_weight > 0, with_importance=False)
    settings = DistillSettings.from_config({"distill": {"epochs": 1, "batch_size": 4, "router_weight": router_weight,
                                                        "learn_rate": 0.01}})
    targets = Targets(view.logits, gold_arrays(docs, LABELS, exclusive=True), view.router_logits)
    torch.manual_seed(0)
    history = fit(module, Features(pipe.model, docs), targets, settings, epochs=1, exclusive=True,
                  aux_weights=aux_weights, teacher_experts=list(range(module.n_experts)))
    return module, history


def test_aux_loss_weights_reach_the_router(teacher) -> None:
    nlp, pipe = teacher
    docs = [nlp.make_doc(text) for text in TEXTS]
    no_aux, _ = _fit_once(pipe, docs, (0.0, 0.0))
    again, _ = _fit_once(pipe, docs, (0.0, 0.0))
    with_aux, _ = _fit_once(pipe, docs, (10.0, 1.0))
    gate = lambda m: m.moe[0].router.gate.weight  # noqa: E731
    torch.testing.assert_close(gate(no_aux), gate(again))  # the run is deterministic ...
    assert not torch.allclose(gate(no_aux), gate(with_aux))  # ... and the aux loss moves the router
    assert torch.isfinite(gate(with_aux)).all()


def test_router_matching_reads_the_typed_router_logits(teacher) -> None:
    nlp, pipe = teacher
    docs = [nlp.make_doc(text) for text in TEXTS]
    _, history = _fit_once(pipe, docs, (0.01, 0.001), router_weight=0.5)
    assert history[0]["router"] >= 0.0
    _, plain = _fit_once(pipe, docs, (0.01, 0.001))
    assert plain[0]["router"] == 0.0
    # the student starts as the teacher: its routing matches, then drifts a little
    assert history[0]["router"] < 0.5


def test_no_forward_hooks_are_left_on_the_module(teacher) -> None:
    nlp, pipe = teacher
    docs = [nlp.make_doc(text) for text in TEXTS]
    module, _ = _fit_once(pipe, docs, (0.01, 0.001), router_weight=0.5)
    teacher_view(pipe.model, docs, with_router=True)
    for m in list(module.modules()) + list(torch_module(pipe.model).modules()):
        assert not m._forward_hooks and not m._forward_pre_hooks


@pytest.mark.parametrize("start_margin", [0.0, 1.0])
def test_a_phase_that_only_hurts_on_dev_goes_back_to_its_starting_weights(teacher, start_margin: float) -> None:
    """Fine-tuning after pruning restarts the learning rate; when the weights a phase
    started from beat its best epoch on dev by more than ``start_margin``, those weights
    are what it returns (1.0: never go back)."""
    nlp, pipe = teacher
    docs = [nlp.make_doc(text) for text, _ in TRAIN]
    for doc, (_, label) in zip(docs, TRAIN):
        doc.cats = {name: float(name == label) for name in LABELS}
    module = copy.deepcopy(torch_module(pipe.model))
    start = copy.deepcopy(module.state_dict())
    view = teacher_view(pipe.model, docs, with_router=False, with_importance=False)
    gold = gold_arrays(docs, LABELS, exclusive=True)
    # pure distillation towards the teacher's logits turned upside down: every step hurts
    targets = Targets(-4.0 * view.logits, gold, None)
    settings = DistillSettings.from_config({"distill": {"epochs": 2, "batch_size": 4, "learn_rate": 0.01,
                                                        "alpha": 1.0, "start_margin": start_margin}})
    features = Features(pipe.model, docs)
    torch.manual_seed(0)
    history = fit(module, features, targets, settings, epochs=2, exclusive=True,
                  aux_weights=(0.0, 0.0), dev=(features, gold))
    assert history[0]["dev_macro_f1_start"] == pytest.approx(1.0)  # the teacher fits its own train docs
    assert all(row["dev_macro_f1"] < 0.9 for row in history), history
    kept = [row for row in history if row.get("kept")]
    if start_margin == 0.0:
        assert not kept
        for name, value in module.state_dict().items():
            torch.testing.assert_close(value, start[name], msg=name)
    else:
        best = max(history, key=lambda row: row["dev_macro_f1"])
        assert kept == [best]
        assert predict_scores(module, features).argmax(-1).tolist() != \
            predict_scores(torch_module(pipe.model), features).argmax(-1).tolist()
