"""The torch classifier's output contract, over a family of model shapes: logits with
no activation, contributions that sum to them exactly, router logits per MoE layer,
first-layer routing, aux losses; and ``weighted_aux_loss``."""
from __future__ import annotations

import itertools

import pytest
import torch

from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier, sum_contributions
from spacy_sparse_expert.ml.torch.encoder import HashEncoder
from spacy_sparse_expert.ml.torch.losses import weighted_aux_loss

N_EXPERTS, K, N_LABELS = 3, 2, 4


def _classifier(n_moe_layers: int, bow_rows: int, knowledge_bow: bool, path_dropout: float) -> MoEDocClassifier:
    torch.manual_seed(n_moe_layers * 7 + bow_rows)
    return MoEDocClassifier(HashEncoder(60, 8, depth=1), width=8, n_labels=N_LABELS, n_experts=N_EXPERTS, k=K,
                            d_ff=8, n_moe_layers=n_moe_layers, n_knowledge_ids=7, d_knowledge=4, n_dense=2,
                            bow_rows=bow_rows, knowledge_bow=knowledge_bow, path_dropout=path_dropout,
                            dropout=0.0)


def _inputs(lengths, seed: int):
    """Random inputs for docs of ``lengths`` tokens: hashed ids, a bag of n-grams, one
    knowledge bag per token, dense features, router and label biases."""
    g = torch.Generator().manual_seed(seed)
    n, b = sum(lengths), len(lengths)
    starts = torch.cumsum(torch.tensor([1] + [length + 1 for length in lengths]), 0)[:-1]
    packed = torch.cat([torch.arange(length) + s for length, s in zip(lengths, starts.tolist())]).long()
    per_token = torch.randint(0, 3, (n,), generator=g)
    know_offsets = torch.cumsum(per_token, 0) - per_token
    per_doc = torch.tensor([min(length, 5) for length in lengths])
    return {
        "enc": {"hash_ids": torch.randint(0, 60, (n, 2), generator=g), "packed_pos": packed,
                "n_packed": int(n + b + 1)},
        "doc_index": torch.repeat_interleave(torch.arange(b), torch.tensor(lengths)),
        "n_docs": b,
        "bow_ids": torch.randint(0, 16, (int(per_doc.sum()),), generator=g),
        "bow_offsets": torch.cumsum(per_doc, 0) - per_doc,
        "bow_weights": torch.ones(int(per_doc.sum())),
        "know_ids": torch.randint(0, 7, (int(per_token.sum()),), generator=g),
        "know_offsets": know_offsets,
        "know_dense": torch.rand(n, 2, generator=g),
        "expert_bias": torch.randn(n, N_EXPERTS, generator=g),
        "label_bias": torch.randn(b, N_LABELS, generator=g) * 5,
    }


FAMILY = list(itertools.product([0, 1, 2], [0, 16], [False, True], [0.0, 0.5], [True, False]))


@pytest.mark.parametrize("n_moe_layers,bow_rows,knowledge_bow,path_dropout,training", FAMILY)
def test_output_contract(n_moe_layers, bow_rows, knowledge_bow, path_dropout, training):
    clf = _classifier(n_moe_layers, bow_rows, knowledge_bow, path_dropout).train(training)
    for seed, lengths in enumerate([[3, 2], [1], [5, 1, 4], [2, 6, 3, 1]]):
        with torch.no_grad():
            out = clf(**_inputs(lengths, seed))
        n, b = sum(lengths), len(lengths)
        assert out.logits.shape == (b, N_LABELS)
        expected = ["experts", "rules"] + ["ngrams"] * (bow_rows > 0) + ["knowledge_bag"] * knowledge_bow
        assert list(out.contributions) == expected
        assert all(part.shape == (b, N_LABELS) for part in out.contributions.values())
        assert torch.equal(sum_contributions(out.contributions), out.logits)
        assert torch.allclose(sum(out.contributions.values()), out.logits, atol=1e-6)
        # no activation inside: logits are free reals, not probabilities
        assert out.aux_losses.shape == (2,) and out.aux_losses.dtype == torch.float32
        assert len(out.router_logits) == n_moe_layers
        assert all(r.shape == (n, N_EXPERTS) for r in out.router_logits)
        if n_moe_layers:
            assert out.expert_indices.shape == out.expert_weights.shape == (n, K)
            top = torch.topk(out.router_logits[0], K, dim=-1).indices
            assert torch.equal(out.expert_indices.sort(-1).values, top.sort(-1).values)
            assert torch.allclose(out.expert_weights.sum(-1), torch.ones(n))
            assert bool((out.aux_losses > 0).all()) and bool(torch.isfinite(out.aux_losses).all())
        else:
            assert float(out.aux_losses.abs().sum()) == 0.0
    # logits are not squashed: large label biases give logits outside [0, 1]
    assert float(out.logits.abs().max()) > 1.0 or float(out.contributions["rules"].abs().max()) == 0.0


def test_rules_contribution_is_the_log_compressed_bias():
    clf = _classifier(1, 16, False, 0.0).eval()
    inputs = _inputs([3, 4], 0)
    with torch.no_grad():
        clf.label_bias_scale.fill_(0.7)
        out = clf(**inputs)
    b = inputs["label_bias"]
    assert torch.allclose(out.contributions["rules"], 0.7 * torch.sign(b) * torch.log1p(b.abs()))


def test_empty_batch_and_empty_docs():
    clf = _classifier(2, 16, True, 0.0).eval()
    with torch.no_grad():
        out = clf(**_inputs([0, 0], 1))
    assert out.logits.shape == (2, N_LABELS) and torch.isfinite(out.logits).all()
    assert [r.shape for r in out.router_logits] == [(0, N_EXPERTS)] * 2
    assert out.expert_indices.shape == (0, K)
    assert torch.equal(sum_contributions(out.contributions), out.logits)


@pytest.mark.parametrize("weights", [(0.01, 0.001), (1.0, 0.0), (0.0, 0.5), (0.0, 0.0), (3.0, 2.0)])
def test_weighted_aux_loss_value_and_gradient(weights):
    aux = torch.tensor([1.3, 2.5], requires_grad=True)
    loss = weighted_aux_loss(aux, weights)
    assert loss.shape == ()
    assert float(loss.detach()) == pytest.approx(weights[0] * 1.3 + weights[1] * 2.5, rel=1e-6)
    loss.backward()
    assert aux.grad.tolist() == pytest.approx(list(weights))


def test_weighted_aux_loss_needs_two_weights():
    with pytest.raises(ValueError, match="load_balancing_weight, z_loss_weight"):
        weighted_aux_loss(torch.zeros(2), (0.1,))
