"""Knowledge-distillation losses, pure PyTorch (no spaCy).

Per document, with student logits s, teacher logits t and temperature T:

    loss = (1 - alpha) * CE(gold, s) + alpha * T**2 * KL(p_t^T || p_s^T)     (gold known)
    loss = T**2 * KL(p_t^T || p_s^T)                                          (no gold)

``p^T`` is softmax(logits / T) for exclusive labels, and an independent Bernoulli
sigmoid(logits / T) per label for multilabel ones (the KL is summed over labels). The
T**2 factor keeps the soft term's gradient on the scale of the hard one (Hinton et al.
2015). The router term matches each token's expert distribution of the student to
the teacher's, restricted to the teacher experts the student kept.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class DistillLoss(NamedTuple):
    """total: scalar, the mean over documents of the combined loss.
    ce: scalar, mean gold cross-entropy over documents with gold (0 if none).
    kl: scalar, mean T**2-scaled KL to the teacher over all documents."""

    total: Tensor
    ce: Tensor
    kl: Tensor


def soft_kl(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float, exclusive: bool) -> Tensor:
    """Per-document KL(teacher_T || student_T) * T**2. logits: (B, L). RETURNS (B,)."""
    s = student_logits / temperature
    t = teacher_logits.to(s.dtype) / temperature
    if exclusive:
        log_ps, log_pt = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
        kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    else:
        # Bernoulli KL per label: p log(p/q) + (1-p) log((1-p)/(1-q)), in log-sigmoid form
        log_ps, log_qs = F.logsigmoid(s), F.logsigmoid(-s)
        log_pt, log_qt = F.logsigmoid(t), F.logsigmoid(-t)
        kl = (log_pt.exp() * (log_pt - log_ps) + log_qt.exp() * (log_qt - log_qs)).sum(-1)
    return kl * temperature**2


def gold_ce(student_logits: Tensor, gold: Tensor, not_missing: Tensor, *, exclusive: bool) -> Tensor:
    """Per-document cross-entropy with the gold labels. gold, not_missing: (B, L) in
    {0, 1}; multilabel labels with not_missing = 0 do not count. RETURNS (B,)."""
    gold = gold.to(student_logits.dtype)
    mask = not_missing.to(student_logits.dtype)
    if exclusive:
        return -(gold * F.log_softmax(student_logits, dim=-1) * mask).sum(-1)
    bce = F.binary_cross_entropy_with_logits(student_logits, gold, reduction="none")
    return (bce * mask).sum(-1)


def distill_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    gold: Tensor,
    not_missing: Tensor,
    has_gold: Tensor,
    *,
    alpha: float,
    temperature: float,
    exclusive: bool,
) -> DistillLoss:
    """The combined loss of the module docstring.

    student_logits, teacher_logits: (B, L); gold, not_missing: (B, L); has_gold: (B,)
    bool, False for unlabelled documents (they use the teacher term alone).
    """
    kl = soft_kl(student_logits, teacher_logits, temperature=temperature, exclusive=exclusive)
    ce = gold_ce(student_logits, gold, not_missing, exclusive=exclusive)
    labelled = has_gold.to(kl.dtype)
    per_doc = labelled * ((1.0 - alpha) * ce + alpha * kl) + (1.0 - labelled) * kl
    n_gold = labelled.sum()
    ce_mean = (ce * labelled).sum() / n_gold.clamp_min(1.0)
    return DistillLoss(per_doc.mean(), ce_mean, kl.mean())


def router_kl(student_router_logits: Tensor, teacher_router_logits: Tensor,
              teacher_experts: Optional[Sequence[int]] = None) -> Tensor:
    """Mean over tokens of KL(teacher routing || student routing).

    student_router_logits: (N, E_s); teacher_router_logits: (N, E_t);
    teacher_experts: the teacher expert behind each student expert (len E_s; None =
    the same experts). The teacher's distribution is renormalised over those experts.
    """
    t = teacher_router_logits.to(student_router_logits.dtype)
    if teacher_experts is not None:
        t = t[:, torch.as_tensor(list(teacher_experts), dtype=torch.long, device=t.device)]
    if student_router_logits.shape != t.shape:
        raise ValueError(f"router logits of shape {tuple(student_router_logits.shape)} and teacher's "
                         f"{tuple(t.shape)} (after selecting its experts) differ")
    if t.shape[0] == 0:
        return student_router_logits.sum() * 0.0
    log_pt, log_ps = F.log_softmax(t, dim=-1), F.log_softmax(student_router_logits, dim=-1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()


__all__ = ["DistillLoss", "distill_loss", "gold_ce", "router_kl", "soft_kl"]
