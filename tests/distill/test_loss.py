"""distill/loss.py: the KD loss, its parts and router matching."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spacy_sparse_expert.distill.loss import distill_loss, router_kl, soft_kl


def _batch(exclusive: bool = True, n: int = 5, labels: int = 4):
    torch.manual_seed(0)
    logits = torch.randn(n, labels, dtype=torch.float64) * 3
    gold = F.one_hot(torch.randint(labels, (n,)), labels).double() if exclusive else \
        (torch.rand(n, labels) > 0.5).double()
    return logits, gold, torch.ones(n, labels), torch.ones(n, dtype=torch.bool)


@pytest.mark.parametrize("exclusive", [True, False])
def test_kl_is_zero_when_student_equals_teacher(exclusive: bool) -> None:
    logits, gold, mask, has_gold = _batch(exclusive)
    for t in (1.0, 2.0, 4.0):
        assert torch.allclose(soft_kl(logits, logits.clone(), temperature=t, exclusive=exclusive),
                              torch.zeros(5, dtype=torch.float64), atol=1e-12)
        parts = distill_loss(logits, logits.clone(), gold, mask, has_gold, alpha=0.7, temperature=t,
                             exclusive=exclusive)
        assert float(parts.kl) == pytest.approx(0.0, abs=1e-12)
        assert float(parts.total) == pytest.approx(0.3 * float(parts.ce))


@pytest.mark.parametrize("exclusive", [True, False])
def test_kl_is_positive_and_matches_torch(exclusive: bool) -> None:
    student, gold, mask, has_gold = _batch(exclusive)
    teacher = student + torch.randn_like(student)
    kl = soft_kl(student, teacher, temperature=2.0, exclusive=exclusive)
    assert (kl > 0).all()
    s, t = student / 2.0, teacher / 2.0
    if exclusive:
        ref = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="none").sum(-1)
    else:
        p, q = torch.sigmoid(t), torch.sigmoid(s)
        ref = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).sum(-1)
    assert torch.allclose(kl, ref * 4.0)


def test_alpha_mixes_ce_and_kl_and_unlabelled_docs_use_the_teacher_only() -> None:
    student, gold, mask, has_gold = _batch()
    teacher = student.flip(0)
    ce = -(gold * F.log_softmax(student, -1)).sum(-1)
    kl = soft_kl(student, teacher, temperature=3.0, exclusive=True)
    has_gold[3:] = False
    parts = distill_loss(student, teacher, gold, mask, has_gold, alpha=0.25, temperature=3.0, exclusive=True)
    expected = torch.cat([0.75 * ce[:3] + 0.25 * kl[:3], kl[3:]]).mean()
    assert torch.allclose(parts.total, expected)
    assert torch.allclose(parts.ce, ce[:3].mean())
    only_ce = distill_loss(student, teacher, gold, mask, torch.ones(5, dtype=torch.bool), alpha=0.0,
                           temperature=3.0, exclusive=True)
    assert torch.allclose(only_ce.total, F.cross_entropy(student, gold.argmax(1)))


def test_gradient_pulls_the_student_toward_the_teacher() -> None:
    student, gold, mask, _ = _batch()
    teacher = torch.randn_like(student)
    z = student.clone().requires_grad_()
    loss = distill_loss(z, teacher, gold, mask, torch.zeros(5, dtype=torch.bool), alpha=1.0, temperature=2.0,
                        exclusive=True)
    loss.total.backward()
    with torch.no_grad():
        moved = z - 0.5 * z.grad
    before = soft_kl(student, teacher, temperature=2.0, exclusive=True).mean()
    after = soft_kl(moved, teacher, temperature=2.0, exclusive=True).mean()
    assert after < before


def test_router_kl_zero_for_same_routing_and_selects_teacher_experts() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(7, 6)
    assert float(router_kl(teacher.clone(), teacher)) == pytest.approx(0.0, abs=1e-7)
    keep = [4, 1, 2]
    assert float(router_kl(teacher[:, keep] + 5.0, teacher, keep)) == pytest.approx(0.0, abs=1e-6)
    assert float(router_kl(teacher[:, [0, 1, 2]], teacher, keep)) > 0
    with pytest.raises(ValueError, match="router logits"):
        router_kl(torch.zeros(7, 2), teacher, keep)
