"""Pure PyTorch building blocks: knowledge-biased router, batched experts, sparse
MoE layer and its auxiliary losses. No spaCy or thinc imports here."""
from __future__ import annotations

from .experts import ACTIVATIONS, DenseFFN, Experts
from .losses import load_balancing_loss, router_z_loss, weighted_aux_loss
from .moe import DISPATCH_BACKENDS, MoEOutput, SparseMoE, compute_capacity, dispatch_experts, naive_moe_forward
from .pruning import expert_importance, ffn_unit_importance, top_experts, top_units
from .router import RouterOutput, TopKRouter

__all__ = [
    "ACTIVATIONS",
    "DISPATCH_BACKENDS",
    "DenseFFN",
    "Experts",
    "MoEOutput",
    "RouterOutput",
    "SparseMoE",
    "TopKRouter",
    "compute_capacity",
    "dispatch_experts",
    "expert_importance",
    "ffn_unit_importance",
    "load_balancing_loss",
    "naive_moe_forward",
    "router_z_loss",
    "top_experts",
    "top_units",
    "weighted_aux_loss",
]
