"""The component's update sends the torch weights exactly the gradient of
cross-entropy (or binary cross-entropy) on the logits plus the weighted aux losses:
the gradient the component hands back is w.r.t. the logits (probs - truth), the
output activation does not apply its Jacobian again, and the aux-loss gradient is
added once. Checked against plain torch autograd on the same module and inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from spacy.util import fix_random_seed
from thinc.api import NumpyOps

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.inputs import build_inputs, to_torch
from spacy_sparse_expert.ml.output import LabelActivation, aux_loss
from spacy_sparse_expert.ml.torch.losses import weighted_aux_loss
from spacy_sparse_expert.pipeline.gold import gold_arrays

from .conftest import make_examples, make_nlp, rules_path, tiny_model

CASES = [
    ("sparse_expert_textcat", 0.01, 0.001),
    ("sparse_expert_textcat", 1.0, 0.5),
    ("sparse_expert_textcat", 0.0, 0.0),
    ("sparse_expert_textcat_multilabel", 0.01, 0.001),
    ("sparse_expert_textcat_multilabel", 0.3, 0.0),
]


@pytest.mark.parametrize("factory,lb_weight,z_weight", CASES)
def test_update_gradient_is_ce_on_logits_plus_weighted_aux(factory, lb_weight, z_weight, kb_dir):
    fix_random_seed(1)
    exclusive = factory == "sparse_expert_textcat"
    nlp = make_nlp(factory, load_balancing_weight=lb_weight, z_loss_weight=z_weight,
                   model=tiny_model(exclusive, knowledge_bow=True, n_moe_layers=2))
    examples = make_examples(nlp, multilabel=not exclusive)
    textcat = nlp.get_pipe("textcat")
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                       rules_loader=load_rules_v1(str(rules_path())))
    module = torch_module(textcat.model)
    losses = textcat.update(examples)  # no optimizer: the gradients stay on the parameters
    via_component = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    module.zero_grad()

    docs = [eg.predicted for eg in examples]
    out = module.train()(**to_torch(build_inputs(textcat.model, docs), torch.device("cpu")))
    gold = gold_arrays(examples, textcat.labels, exclusive)
    truth, mask = torch.from_numpy(gold.gold), torch.from_numpy(gold.not_missing)
    if exclusive:
        task = -(truth * torch.log_softmax(out.logits, -1) * mask).sum() / len(docs)
    else:
        task = (torch.nn.functional.binary_cross_entropy_with_logits(out.logits, truth, reduction="none")
                * mask).sum() / len(docs)
    (task + weighted_aux_loss(out.aux_losses, (lb_weight, z_weight))).backward()
    via_torch = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}

    assert set(via_component) == set(via_torch)
    for name, grad in via_torch.items():
        assert torch.allclose(via_component[name], grad, atol=1e-6, rtol=1e-4), name
    router = [name for name in via_torch if "router" in name]
    assert router and any(float(via_torch[name].abs().sum()) > 0 for name in router)
    aux = out.aux_losses.detach()
    expected = float(task.detach()) + lb_weight * float(aux[0]) + z_weight * float(aux[1])
    assert losses["textcat"] == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("exclusive", [True, False])
def test_label_activation_passes_the_logit_gradient_through(exclusive):
    layer = LabelActivation(exclusive)
    layer.initialize()
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 30.0, 1000.0):  # large logits: no overflow, no warning
        logits = (rng.standard_normal((5, 4)) * scale).astype("f")
        scores, backprop = layer(logits, is_train=True)
        want = torch.softmax(torch.from_numpy(logits), -1) if exclusive else torch.sigmoid(torch.from_numpy(logits))
        assert np.allclose(scores, want.numpy(), atol=1e-6)
        assert np.isfinite(scores).all()
        d = rng.standard_normal((5, 4)).astype("f")
        assert backprop(d) is d


def test_aux_loss_value_and_gradient():
    ops = NumpyOps()
    values = ops.asarray1f([1.5, 3.0])
    loss, d_aux = aux_loss(values, (0.1, 0.01))
    assert loss == pytest.approx(0.18)
    assert d_aux.tolist() == pytest.approx([0.1, 0.01])
    assert aux_loss(values, (0.0, 0.0)) == (0.0, None)
