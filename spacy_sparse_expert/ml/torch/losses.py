"""Auxiliary router losses, as pure functions of the router's outputs.

Kept apart from the module (as in Mixtral's ``load_balancing_loss_func``) so that a
caller can weight, log or recompute them without touching the MoE layer.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor


def load_balancing_loss(
    router_probs: Tensor,
    expert_indices: Tensor,
    n_experts: Optional[int] = None,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Switch / GShard load-balancing loss ``E * sum_e f_e * P_e``.

    router_probs: (N, E) softmax probabilities over all experts (before top-k).
    expert_indices: (N, k) long, the selected experts per token.
    f_e is the fraction of the N*k assignments that went to expert e and P_e the
    mean router probability of e. The loss is 1.0 at perfectly uniform routing
    (f_e = P_e = 1/E) and approaches E when every token goes to one expert.
    mask: optional (N,) bool; tokens where it is False (padding) are left out.
    RETURNS: scalar fp32 tensor (0.0 when no token counts, so empty batches are
    harmless). No host sync.
    """
    n_experts = router_probs.shape[-1] if n_experts is None else n_experts
    probs = router_probs.reshape(-1, n_experts)
    if probs.dtype in (torch.float16, torch.bfloat16):
        probs = probs.float()
    k = expert_indices.shape[-1]
    indices = expert_indices.reshape(probs.shape[0], k)
    token_w = (
        torch.ones(probs.shape[0], dtype=probs.dtype, device=probs.device)
        if mask is None
        else mask.reshape(-1).to(probs.dtype)
    )
    n_valid = token_w.sum().clamp_min(1.0)
    counts = torch.zeros(n_experts, dtype=probs.dtype, device=probs.device)
    counts.index_add_(0, indices.reshape(-1), token_w.repeat_interleave(k))
    fraction = counts / (n_valid * k)  # f_e, not differentiable (it comes from top-k)
    mean_prob = (probs * token_w.unsqueeze(1)).sum(dim=0) / n_valid  # P_e, carries the gradient
    return n_experts * torch.sum(fraction * mean_prob)


def router_z_loss(router_logits: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """ST-MoE router z-loss: mean over tokens of ``logsumexp(logits)**2``.

    router_logits: (N, E). Penalises large logits, which keeps the fp32 softmax
    well conditioned. For all-zero logits it equals ``log(E)**2``.
    mask: optional (N,) bool; tokens where it is False are left out.
    RETURNS: scalar fp32 tensor (0.0 when no token counts).
    """
    logits = router_logits.reshape(-1, router_logits.shape[-1])
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    z = torch.logsumexp(logits, dim=-1).square()
    if mask is None:
        return z.sum() / max(z.shape[0], 1)
    token_w = mask.reshape(-1).to(z.dtype)
    return (z * token_w).sum() / token_w.sum().clamp_min(1.0)


def weighted_aux_loss(aux_losses: Tensor, weights: Sequence[float]) -> Tensor:
    """Scalar ``w_balance * load_balancing + w_z * z_loss``.

    aux_losses: (2,) [load-balancing, router z-loss], as ``ClassifierOutput.aux_losses``.
    weights: (load_balancing_weight, z_loss_weight).
    """
    if len(weights) != 2:
        raise ValueError(f"weights must be (load_balancing_weight, z_loss_weight), got {tuple(weights)!r}")
    w = torch.tensor([float(v) for v in weights], dtype=aux_losses.dtype, device=aux_losses.device)
    return (aux_losses * w).sum()


__all__ = ["load_balancing_loss", "router_z_loss", "weighted_aux_loss"]
