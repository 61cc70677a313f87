from __future__ import annotations

import math

import pytest
import torch

from spacy_sparse_expert.ml.torch import load_balancing_loss, router_z_loss


def test_load_balancing_is_one_when_uniform() -> None:
    n_experts, k = 4, 2
    probs = torch.full((8, n_experts), 1.0 / n_experts)
    # every expert gets exactly 8*2/4 = 4 assignments
    indices = torch.tensor([[0, 1], [2, 3]] * 4)
    assert load_balancing_loss(probs, indices).item() == pytest.approx(1.0)


def test_load_balancing_collapsed_is_larger() -> None:
    n_experts = 4
    probs = torch.zeros(6, n_experts)
    probs[:, 0] = 1.0
    indices = torch.zeros(6, 1, dtype=torch.long)
    assert load_balancing_loss(probs, indices).item() == pytest.approx(n_experts)
    skewed = torch.softmax(torch.randn(6, n_experts) + torch.tensor([3.0, 0, 0, 0]), -1)
    assert load_balancing_loss(skewed, skewed.topk(1).indices).item() > 1.0


def test_load_balancing_formula_and_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(10, 3, requires_grad=True)
    probs = logits.softmax(-1)
    indices = probs.topk(2).indices
    f = torch.bincount(indices.reshape(-1), minlength=3).float() / indices.numel()
    expected = 3 * (f * probs.mean(0)).sum()
    loss = load_balancing_loss(probs, indices)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_load_balancing_mask_ignores_padding() -> None:
    torch.manual_seed(0)
    probs = torch.randn(7, 4).softmax(-1)
    indices = probs.topk(2).indices
    mask = torch.tensor([1, 1, 0, 1, 0, 1, 1], dtype=torch.bool)
    assert load_balancing_loss(probs, indices, mask=mask).item() == pytest.approx(
        load_balancing_loss(probs[mask], indices[mask]).item(), rel=1e-6
    )


def test_z_loss_formula() -> None:
    n_experts = 4
    assert router_z_loss(torch.zeros(5, n_experts)).item() == pytest.approx(math.log(n_experts) ** 2)
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    expected = torch.logsumexp(logits, -1).pow(2).mean()
    assert router_z_loss(logits).item() == pytest.approx(expected.item())
    # grows with the logit scale
    assert router_z_loss(10 * logits) > router_z_loss(logits)


def test_losses_empty_input_are_zero() -> None:
    probs = torch.zeros(0, 4, requires_grad=True)
    lb = load_balancing_loss(probs, torch.zeros(0, 2, dtype=torch.long))
    z = router_z_loss(probs)
    assert lb.item() == 0.0 and z.item() == 0.0
    (lb + z).backward()
