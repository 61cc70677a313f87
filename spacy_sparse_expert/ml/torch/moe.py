"""Sparse top-k mixture-of-experts layer with knowledge-biased routing.

Data flow (after Mixtral's sparse MoE block): router -> top-k -> renormalise ->
dispatch assignments to experts -> run experts -> weight and scatter-add back.
The auxiliary losses are computed by the pure functions in ``losses.py`` and
returned in :class:`MoEOutput` (st-moe-pytorch's idea: an explicit contract).

Dispatch ("ours"): the N*k (token, slot) assignments are flattened slot-major
(every token's first choice before any second choice), stably sorted by expert,
and counted per expert (a ``scatter_add_``: CUDA ``bincount`` syncs). Position within an expert's group is therefore
(slot, token position); with a finite capacity C an expert keeps the first C of
its group and the rest are dropped (their output for that slot is 0). A packed
row layout is built by *gathering* (rows -> assignments), so no step needs the
group sizes on the host, then one of three backends runs the experts:

* ``"grouped_mm"`` (CUDA, bf16, sm80+, dims multiple of 8): groups padded to a
  multiple of 16 rows inside a buffer of static size N*k + 15*E (the slack rows
  join the last group and are masked), one ``F.grouped_mm`` per matrix. No host
  sync, dropless or not (a ``mask`` costs one: the capacity counts valid tokens).
* ``"padded"`` (CUDA fallback, e.g. fp32): a (E, C, d) buffer and ``bmm``. With a
  finite capacity factor C = ceil(cf * N*k / E) is known from shapes (no sync);
  dropless uses C = max group size, which costs one device->host sync, and pads
  every expert to the busiest one (wasted FLOPs grow with imbalance).
* ``"loop"`` (CPU): group sizes read on the host (free on CPU), then one custom
  autograd op loops over experts (never tokens): gather, GEMM, activation, GEMM,
  scale and scatter-add per expert while its rows are in cache, gradients written
  straight into (E, ...) buffers. On CPU this beats the padded bmm, which does
  padded work, and plain autograd over ``w[e]`` slices, which copies gradients.
  Dropless, the groups are found one expert at a time (no sort, no padded layout),
  and without autograd (inference) the experts run in cache-sized steps of rows and
  keep nothing for a backward pass (``experts._sorted_experts_inference``).

``naive_moe_forward`` is the Mixtral-style reference on the same weights.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .experts import Experts, grouped_mm_fn
from .losses import load_balancing_loss, router_z_loss
from .router import RouterOutput, TopKRouter

DISPATCH_BACKENDS = ("auto", "loop", "padded", "grouped_mm")
# grouped GEMM kernels want 16-row aligned groups and 16-byte aligned rows
_GROUP_ALIGN = 16


class MoEOutput(NamedTuple):
    """Result of :class:`SparseMoE` for x of shape (..., d_model).

    output: (..., d_model) the weighted sum of the k expert outputs (no residual).
    load_balancing_loss: scalar fp32, ``E * sum_e f_e P_e`` (1.0 when balanced).
    z_loss: scalar fp32, mean ``logsumexp(logits)**2``.
    router_logits: (..., E) fp32 logits including knowledge and router_bias.
    expert_indices: (..., k) long, chosen experts (distinct, best first).
    expert_weights: (..., k) fp32 renormalised routing weights (sum to 1).
    dropped: (..., k) bool, assignments dropped by the capacity limit.
    """

    output: Tensor
    load_balancing_loss: Tensor
    z_loss: Tensor
    router_logits: Tensor
    expert_indices: Tensor
    expert_weights: Tensor
    dropped: Tensor

    def aux_loss(self, balance_weight: float = 0.01, z_weight: float = 0.001) -> Tensor:
        """Weighted sum of the two auxiliary losses (Switch / ST-MoE defaults)."""
        return balance_weight * self.load_balancing_loss + z_weight * self.z_loss


class _Layout(NamedTuple):
    """Packed rows for the experts. rows: (M,) token id per row (N = zero row);
    row_expert: (M,) expert of each row; valid: (M,) bool; weight: (M,) routing
    weight per row (0 where invalid); counts: (E,) kept rows per expert; ends: (E,)
    end row of each (padded) group; dropped: (N, k) bool."""

    rows: Tensor
    row_expert: Tensor
    valid: Tensor
    weight: Tensor
    counts: Tensor
    ends: Tensor
    dropped: Tensor


def compute_capacity(n_tokens: int, k: int, n_experts: int, capacity_factor: Optional[float]) -> Optional[int]:
    """Per-expert capacity ``ceil(capacity_factor * N * k / E)``; None = dropless."""
    if capacity_factor is None:
        return None
    return int(math.ceil(capacity_factor * n_tokens * k / n_experts))


def _build_layout(
    indices: Tensor,
    weights: Tensor,
    n_experts: int,
    capacity: Optional[int],
    *,
    align: int = 1,
    n_rows: Optional[int] = None,
    rows_per_expert: Optional[int] = None,
    token_mask: Optional[Tensor] = None,
) -> _Layout:
    """Sort the (token, slot) assignments by expert and pack them into rows.

    Groups are padded to a multiple of ``align`` rows, or to exactly
    ``rows_per_expert`` rows each (the (E, C) layout of the padded bmm). ``n_rows``
    is the buffer size (None = exact, read on the host). Given ``n_rows`` or
    ``rows_per_expert``, nothing here syncs with the host.
    """
    n_tokens, k = indices.shape
    device = indices.device
    n_assign = n_tokens * k
    # slot-major: first choices of all tokens outrank any second choice
    flat_expert = indices.t().reshape(-1)
    if token_mask is not None:  # masked tokens go to a sentinel expert E, sorted last
        flat_expert = torch.where(token_mask.repeat(k), flat_expert, n_experts)
    flat_token = torch.arange(n_tokens, device=device).repeat(k)
    flat_weight = weights.t().reshape(-1)
    order = torch.argsort(flat_expert, stable=True)
    all_counts = _count(flat_expert, n_experts + 1)[:n_experts]
    starts = torch.cumsum(all_counts, 0) - all_counts
    kept = all_counts if capacity is None else all_counts.clamp(max=capacity)
    if rows_per_expert is not None:
        padded = torch.full_like(kept, rows_per_expert)
        n_rows = n_experts * rows_per_expert
    else:
        padded = (kept + align - 1) // align * align
    ends = torch.cumsum(padded, 0)
    pstarts = ends - padded
    if n_rows is None:
        n_rows = int(ends[-1]) if n_experts > 0 else 0
    r = torch.arange(n_rows, device=device)
    row_expert = torch.searchsorted(ends, r, right=True).clamp(max=n_experts - 1)
    pos = r - pstarts[row_expert]
    valid = (pos < kept[row_expert]) & (r < ends[-1])
    src = torch.where(valid, starts[row_expert] + pos, n_assign)  # n_assign -> sentinel
    sorted_token = torch.cat([flat_token[order], flat_token.new_full((1,), n_tokens)])
    sorted_weight = torch.cat([flat_weight[order], flat_weight.new_zeros(1)])
    rows = sorted_token[src]
    row_weight = sorted_weight[src]
    # dropped assignments: sorted position within group >= capacity
    if capacity is None:
        dropped = torch.zeros(n_tokens, k, dtype=torch.bool, device=device)
    else:
        sorted_expert = flat_expert[order]
        in_range = sorted_expert < n_experts
        se = sorted_expert.clamp(max=n_experts - 1)
        pos_sorted = torch.arange(n_assign, device=device) - starts[se]
        dropped_sorted = in_range & (pos_sorted >= capacity)
        dropped_flat = torch.empty_like(dropped_sorted)
        dropped_flat[order] = dropped_sorted
        dropped = dropped_flat.view(k, n_tokens).t()
    return _Layout(rows, row_expert, valid, row_weight, kept, ends, dropped)


def _expert_groups(indices: Tensor, weights: Tensor, n_experts: int,
                   token_mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor, list[int]]:
    """The rows, row weights and group sizes of :func:`_build_layout` without a
    capacity (the same rows in the same order: by expert, then slot, then token), for
    the CPU loop, which reads the sizes on the host anyway: one pass per expert
    instead of a stable sort of all N*k assignments (about half the time at E=4)."""
    n_tokens = indices.shape[0]
    flat_expert = indices.t().reshape(-1)  # slot-major, as in _build_layout
    if token_mask is not None:
        flat_expert = torch.where(token_mask.repeat(indices.shape[1]), flat_expert, n_experts)
    groups = [torch.nonzero(flat_expert == e).squeeze(1) for e in range(n_experts)]
    order = torch.cat(groups) if groups else flat_expert[:0]
    rows = order.remainder(n_tokens) if n_tokens else order
    return rows, weights.t().reshape(-1)[order], [int(g.shape[0]) for g in groups]


def _count(values: Tensor, n: int) -> Tensor:
    """``bincount(values, minlength=n)`` for values < n, without the host sync that
    CUDA ``bincount`` does to size its output."""
    return torch.zeros(n, dtype=torch.long, device=values.device).scatter_add_(
        0, values, torch.ones_like(values)
    )


def _grouped_mm_ok(x: Tensor, experts: Experts) -> bool:
    if not (x.is_cuda and x.dtype == torch.bfloat16 and grouped_mm_fn() is not None):
        return False
    if experts.d_model % 8 or experts.d_ff % 8:
        return False
    major, _ = torch.cuda.get_device_capability(x.device)
    return major >= 8


class SparseMoE(nn.Module):
    """Top-k sparse MoE layer: x (..., d_model) -> MoEOutput.

    d_model (int): token width.
    d_ff (int): hidden width of each expert.
    n_experts (int): E.
    k (int): experts per token.
    n_knowledge (int): width of per-token knowledge vectors fed to the router
        (0 = none). Its projection starts at zero (neutral) and is learned.
    capacity_factor (Optional[float]): None = dropless; otherwise each expert
        takes at most ceil(cf * N * k / E) assignments, dropping by priority
        (slot, then token position).
    activation (str): "gelu", "silu" or "swiglu".
    jitter_noise (float): multiplicative router-input noise in training.
    dispatch (str): "auto", "loop", "padded" or "grouped_mm" (see module doc).
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        n_experts: int,
        k: int = 2,
        *,
        n_knowledge: int = 0,
        capacity_factor: Optional[float] = None,
        activation: str = "gelu",
        jitter_noise: float = 0.0,
        dispatch: str = "auto",
    ) -> None:
        super().__init__()
        if dispatch not in DISPATCH_BACKENDS:
            raise ValueError(f"dispatch must be one of {DISPATCH_BACKENDS}, got {dispatch!r}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be > 0 or None (dropless), got {capacity_factor}")
        self.d_model = d_model
        self.d_ff = d_ff
        self.n_experts = n_experts
        self.k = k
        self.n_knowledge = n_knowledge
        self.capacity_factor = capacity_factor
        self.dispatch = dispatch
        self.router = TopKRouter(d_model, n_experts, k, n_knowledge=n_knowledge, jitter_noise=jitter_noise)
        self.experts = Experts(n_experts, d_model, d_ff, activation=activation)

    @property
    def activation(self) -> str:
        return self.experts.activation

    def capacity(self, n_tokens: int) -> Optional[int]:
        return compute_capacity(n_tokens, self.k, self.n_experts, self.capacity_factor)

    def route(
        self, x: Tensor, knowledge: Optional[Tensor] = None, router_bias: Optional[Tensor] = None
    ) -> RouterOutput:
        """Router decision for flat inputs x (N, d_model)."""
        return self.router(x, knowledge, router_bias)

    def forward(
        self,
        x: Tensor,
        knowledge: Optional[Tensor] = None,
        router_bias: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
    ) -> MoEOutput:
        """x: (..., d_model); knowledge: (..., n_knowledge); router_bias: (..., E) or
        (E,), added to the logits; mask: (...,) bool, False for padding tokens, which
        get a zero output, use no capacity and do not count in the losses."""
        lead = x.shape[:-1]
        flat_x = x.reshape(-1, self.d_model)
        n_tokens = flat_x.shape[0]
        flat_k = knowledge.reshape(n_tokens, knowledge.shape[-1]) if knowledge is not None else None
        flat_b = None
        if router_bias is not None:
            flat_b = router_bias if router_bias.dim() == 1 else router_bias.reshape(n_tokens, self.n_experts)
        flat_m = mask.reshape(n_tokens).bool() if mask is not None else None
        routing = self.route(flat_x, flat_k, flat_b)
        capacity = self.capacity(n_tokens if flat_m is None else int(flat_m.sum()))
        out, dropped = dispatch_experts(
            self.experts,
            flat_x,
            routing.indices,
            routing.weights,
            capacity=capacity,
            backend=self.dispatch,
            token_mask=flat_m,
        )
        lb = load_balancing_loss(routing.probs, routing.indices, self.n_experts, mask=flat_m)
        z = router_z_loss(routing.logits, mask=flat_m)
        return MoEOutput(
            out.reshape(*lead, self.d_model),
            lb,
            z,
            routing.logits.reshape(*lead, self.n_experts),
            routing.indices.reshape(*lead, self.k),
            routing.weights.reshape(*lead, self.k),
            dropped.reshape(*lead, self.k),
        )

    def extra_repr(self) -> str:
        return f"k={self.k}, capacity_factor={self.capacity_factor}, dispatch={self.dispatch!r}"


def dispatch_experts(
    experts: Experts,
    x: Tensor,
    indices: Tensor,
    weights: Tensor,
    *,
    capacity: Optional[int] = None,
    backend: str = "auto",
    token_mask: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Run the experts on their assigned tokens and combine.

    x: (N, d_model); indices, weights: (N, k); capacity: None = dropless.
    RETURNS: (output (N, d_model), dropped (N, k) bool).
    """
    n_tokens, k = indices.shape
    n_experts = experts.n_experts
    if backend == "auto":
        if x.device.type == "cpu":
            backend = "loop"
        elif _grouped_mm_ok(x, experts):
            backend = "grouped_mm"
        else:
            backend = "padded"

    if backend == "padded":
        if capacity is None:
            counts = _count(indices.reshape(-1), n_experts)
            if token_mask is not None:
                counts = counts - _count(indices[~token_mask].reshape(-1), n_experts)
            capacity = int(counts.max()) if n_tokens > 0 else 0  # the one host sync
        layout = _build_layout(
            indices, weights, n_experts, capacity, rows_per_expert=capacity, token_mask=token_mask
        )
    elif backend == "grouped_mm":
        # static bound on the padded total, so no sync; the slack rows join the last
        # group (offs[-1] == n_rows) so that every row the kernel reads or writes
        # is defined, in forward and backward
        busy = n_tokens * k if capacity is None else min(n_tokens * k, n_experts * capacity)
        n_rows = busy + (_GROUP_ALIGN - 1) * n_experts
        layout = _build_layout(
            indices, weights, n_experts, capacity, align=_GROUP_ALIGN, n_rows=n_rows, token_mask=token_mask
        )
    elif backend == "loop":
        if capacity is None:  # dropless: the groups alone, without the padded layout
            rows, row_weight, sizes = _expert_groups(indices, weights, n_experts, token_mask)
            dropped = torch.zeros(n_tokens, k, dtype=torch.bool, device=x.device)
            if n_tokens == 0:
                return x[:0].clone(), dropped
            return experts.forward_sorted(x, rows, row_weight, sizes), dropped
        layout = _build_layout(indices, weights, n_experts, capacity, token_mask=token_mask)
    else:
        raise ValueError(f"dispatch must be one of {DISPATCH_BACKENDS}, got {backend!r}")

    if n_tokens == 0:
        return x[:0].clone(), layout.dropped
    if backend == "loop":  # no padding rows; gather/scale/scatter fused per expert
        out = experts.forward_sorted(x, layout.rows, layout.weight, layout.counts.tolist())
        return out, layout.dropped
    # padding rows point at token N (no such token): read row N-1 instead and mask
    # their contribution to exactly 0 below
    rows = layout.rows.clamp(max=n_tokens - 1)
    xs = x[rows]
    if backend == "padded":
        ys = experts.forward_padded(xs.view(n_experts, capacity, x.shape[1])).reshape(-1, x.shape[1])
    else:
        offs = layout.ends.to(torch.int32)
        offs = torch.cat([offs[:-1], offs.new_full((1,), rows.shape[0])])
        ys = experts.forward_grouped_mm(xs, offs, layout.row_expert)
    # padding rows hold bias terms (bmm) or garbage (grouped_mm): exact zeros
    contrib = torch.where(layout.valid.unsqueeze(1), ys * layout.weight.to(ys.dtype).unsqueeze(1), 0)
    out = x.new_zeros(n_tokens, x.shape[1]).index_add(0, rows, contrib.to(x.dtype))
    return out, layout.dropped


def naive_moe_forward(
    moe: SparseMoE,
    x: Tensor,
    knowledge: Optional[Tensor] = None,
    router_bias: Optional[Tensor] = None,
    *,
    capacity: Optional[int] = None,
) -> Tensor:
    """Mixtral-style reference on ``moe``'s weights: loop over experts, find their
    tokens with ``torch.where`` on a one-hot expert mask, run, ``index_add``.
    x: (N, d_model) -> (N, d_model). ``capacity`` keeps the first C assignments of
    each expert in (slot, token) order, the same priority as :class:`SparseMoE`.
    """
    routing = moe.route(x, knowledge, router_bias)
    out = torch.zeros_like(x)
    # (E, k, N): torch.where walks it slot-major, matching SparseMoE's priority
    expert_mask = F.one_hot(routing.indices, num_classes=moe.n_experts).permute(2, 1, 0)
    weights_e = moe.experts.per_expert()  # like Mixtral's separate expert modules
    for e in range(moe.n_experts):
        slot, token = torch.where(expert_mask[e])
        if capacity is not None:
            slot, token = slot[:capacity], token[:capacity]
        if token.numel() == 0:
            continue
        y = moe.experts.forward_expert(e, x[token], weights_e[e]) * routing.weights[token, slot, None].to(x.dtype)
        out.index_add_(0, token, y)
    return out


__all__ = [
    "DISPATCH_BACKENDS",
    "MoEOutput",
    "SparseMoE",
    "compute_capacity",
    "dispatch_experts",
    "naive_moe_forward",
]
