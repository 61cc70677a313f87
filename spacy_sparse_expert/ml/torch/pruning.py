"""Importance scores that pick what :meth:`SparseMoE.select_experts` and
:meth:`SparseMoE.prune_ffn` keep (used by distillation).

Both are measured on calibration tokens, in eval mode and without gradients.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .moe import SparseMoE


@torch.no_grad()
def expert_importance(
    moe: SparseMoE, x: Tensor, knowledge: Optional[Tensor] = None, router_bias: Optional[Tensor] = None
) -> Tensor:
    """Routing mass per expert: the sum over tokens of each expert's renormalised
    top-k weight. x: (N, d_model). RETURNS: (E,) fp32; experts no token picks get 0."""
    routing = moe.route(x.reshape(-1, moe.d_model), knowledge, router_bias)
    mass = torch.zeros(moe.n_experts, dtype=routing.weights.dtype, device=x.device)
    return mass.index_add_(0, routing.indices.reshape(-1), routing.weights.reshape(-1))


@torch.no_grad()
def ffn_unit_importance(
    moe: SparseMoE, x: Tensor, knowledge: Optional[Tensor] = None, router_bias: Optional[Tensor] = None
) -> Tensor:
    """Per hidden unit of each expert: sum over the tokens routed to it of
    ``weight * |h_u| * ||w_out[u]||``, the size of the unit's contribution to the
    layer output. RETURNS: (E, d_ff) fp32."""
    x = x.reshape(-1, moe.d_model)
    routing = moe.route(x, knowledge, router_bias)
    experts = moe.experts
    scores = torch.zeros(moe.n_experts, moe.d_ff, dtype=torch.float32, device=x.device)
    out_norm = experts.w_out.float().norm(dim=2)  # (E, d_ff)
    for e in range(moe.n_experts):  # a loop over experts, never tokens
        token, slot = torch.where(routing.indices == e)
        if token.numel() == 0:
            continue
        xe = x[token]
        up = xe @ experts.w_in[e] + experts.b_in[e]
        gate = None
        if experts.w_gate is not None and experts.b_gate is not None:
            gate = xe @ experts.w_gate[e] + experts.b_gate[e]
        hidden = experts._hidden(up, gate).float().abs()
        scores[e] = (routing.weights[token, slot, None] * hidden).sum(0) * out_norm[e]
    return scores


def top_units(scores: Tensor, d_ff_new: int) -> Tensor:
    """The ``d_ff_new`` highest-scoring hidden units of each expert, in ascending
    index order (keeps memory access monotone). scores: (E, d_ff).
    RETURNS: (E, d_ff_new) long, for :meth:`SparseMoE.prune_ffn`."""
    if not 0 < d_ff_new <= scores.shape[1]:
        raise ValueError(f"d_ff_new must be in [1, {scores.shape[1]}], got {d_ff_new}")
    return scores.topk(d_ff_new, dim=1).indices.sort(dim=1).values


def top_experts(scores: Tensor, n_keep: int) -> list[int]:
    """The ``n_keep`` experts with the most routing mass, in ascending id order,
    for :meth:`SparseMoE.select_experts`."""
    if not 0 < n_keep <= scores.shape[0]:
        raise ValueError(f"n_keep must be in [1, {scores.shape[0]}], got {n_keep}")
    return sorted(scores.topk(n_keep).indices.tolist())


__all__ = ["expert_importance", "ffn_unit_importance", "top_experts", "top_units"]
