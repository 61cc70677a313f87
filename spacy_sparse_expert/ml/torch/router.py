"""Knowledge-biased top-k router.

logits = W_x x + W_k knowledge + router_bias, softmax in fp32, top-k, and the k
weights renormalised to sum to 1 (Mixtral's ``norm_topk_prob``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from .rng import own_random_stream


def at_least_fp32(t: Tensor) -> Tensor:
    """Upcast half / bfloat16 to fp32 (routing is precision sensitive); keep fp64."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class RouterOutput(NamedTuple):
    """What the router decided for N tokens.

    logits: (N, E) fp32 (fp64 for fp64 inputs), before softmax (input to the z-loss).
    probs: (N, E) fp32 softmax over all experts (input to the balancing loss).
    weights: (N, k) fp32, the top-k probabilities renormalised to sum to 1.
    indices: (N, k) long, distinct expert ids, highest probability first.
    """

    logits: Tensor
    probs: Tensor
    weights: Tensor
    indices: Tensor


class TopKRouter(nn.Module):
    """Linear gate plus a knowledge projection and an external per-token bias.

    d_model (int): width of the token vectors x.
    n_experts (int): E.
    k (int): experts per token, 1 <= k <= E.
    n_knowledge (int): width of the knowledge vectors; 0 disables the projection.
    jitter_noise (float): in training, multiply the router input by U(1-eps, 1+eps)
        (Switch Transformer); 0 disables it.

    The knowledge projection has no bias and starts at zero, so knowledge is neutral
    at initialisation; its gradient ``dL/dlogits @ knowledge`` is non-zero, so it
    learns. Without a bias term it can only move the logits of tokens whose
    knowledge vector is non-zero.
    """

    def __init__(
        self,
        d_model: int,
        n_experts: int,
        k: int,
        *,
        n_knowledge: int = 0,
        jitter_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if not 1 <= k <= n_experts:
            raise ValueError(f"k must be in [1, n_experts={n_experts}], got k={k}")
        self.d_model = d_model
        self.n_experts = n_experts
        self.k = k
        self.n_knowledge = n_knowledge
        self.jitter_noise = jitter_noise
        self.gate = nn.Linear(d_model, n_experts)
        # its width depends on the knowledge; it starts at zero anyway, so its default
        # initialisation must not move the global random stream
        with own_random_stream():
            self.knowledge_proj: Optional[nn.Linear] = (
                nn.Linear(n_knowledge, n_experts, bias=False) if n_knowledge > 0 else None
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        if self.knowledge_proj is not None:
            nn.init.zeros_(self.knowledge_proj.weight)

    def compute_logits(
        self,
        x: Tensor,
        knowledge: Optional[Tensor] = None,
        router_bias: Optional[Tensor] = None,
    ) -> Tensor:
        """x: (N, d_model); knowledge: (N, n_knowledge); router_bias: (N, E) or (E,).
        RETURNS: (N, E) fp32 logits."""
        if self.training and self.jitter_noise > 0:
            noise = torch.empty_like(x).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
            x = x * noise
        logits = at_least_fp32(self.gate(x))
        if knowledge is not None:
            if self.knowledge_proj is None:
                raise ValueError(
                    "knowledge was passed but the router was built with n_knowledge=0; "
                    "build SparseMoE(..., n_knowledge=<width>) to use it"
                )
            logits = logits + at_least_fp32(self.knowledge_proj(knowledge.to(self.knowledge_proj.weight.dtype)))
        if router_bias is not None:
            logits = logits + router_bias.to(logits.dtype)
        return logits

    def forward(
        self,
        x: Tensor,
        knowledge: Optional[Tensor] = None,
        router_bias: Optional[Tensor] = None,
    ) -> RouterOutput:
        logits = self.compute_logits(x, knowledge, router_bias)
        # over the last dim, though torch's CPU kernel across rows (dim 0 of the (E, N)
        # view) is ~8x faster at E = 4: that one splits rows between threads from a few
        # hundred tokens on and gives other bits with other thread counts, and a Ray
        # actor (one thread) must write the bytes the local engine writes
        probs = torch.softmax(logits, dim=-1)
        top_probs, indices = torch.topk(probs, self.k, dim=-1)
        # renormalise in fp32; clamp guards the (underflow-only) all-zero case
        weights = top_probs / top_probs.sum(dim=-1, keepdim=True).clamp_min(1e-20)
        return RouterOutput(logits, probs, weights, indices)


__all__ = ["RouterOutput", "TopKRouter", "at_least_fp32"]
