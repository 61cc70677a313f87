"""Expert FFNs stored as batched parameters, and the dense FFN baseline.

All E experts live in 3-D tensors so that one bmm / grouped GEMM can run them
together; slicing ``[e]`` gives expert e for the per-expert paths:

    w_in  (E, d_model, d_ff)   b_in  (E, d_ff)
    w_gate(E, d_model, d_ff)   b_gate(E, d_ff)       (swiglu only)
    w_out (E, d_ff, d_model)   b_out (E, d_model)
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("gelu", "silu", "swiglu")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _act(activation: str) -> Callable[[Tensor], Tensor]:
    return F.gelu if activation == "gelu" else F.silu


class Experts(nn.Module):
    """E independent two-layer FFNs ``act(x W_in + b_in) W_out + b_out``.

    With ``activation="swiglu"`` the hidden layer is ``silu(x W_gate + b_gate) *
    (x W_in + b_in)`` (a third matrix per expert, as in Mixtral's w1/w3).
    """

    def __init__(self, n_experts: int, d_model: int, d_ff: int, *, activation: str = "gelu") -> None:
        super().__init__()
        _check_activation(activation)
        if min(n_experts, d_model, d_ff) < 1:  # d_ff = 0 would divide by zero in reset_parameters
            raise ValueError(f"n_experts, d_model and d_ff must be >= 1, got {n_experts}, {d_model}, {d_ff}")
        self.n_experts = n_experts
        self.d_model = d_model
        self.d_ff = d_ff
        self.activation = activation
        self.w_in = nn.Parameter(torch.empty(n_experts, d_model, d_ff))
        self.b_in = nn.Parameter(torch.empty(n_experts, d_ff))
        self.w_out = nn.Parameter(torch.empty(n_experts, d_ff, d_model))
        self.b_out = nn.Parameter(torch.empty(n_experts, d_model))
        if activation == "swiglu":
            self.w_gate: Optional[nn.Parameter] = nn.Parameter(torch.empty(n_experts, d_model, d_ff))
            self.b_gate: Optional[nn.Parameter] = nn.Parameter(torch.empty(n_experts, d_ff))
        else:
            self.register_parameter("w_gate", None)
            self.register_parameter("b_gate", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # same scale as nn.Linear per expert: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        bound_in = 1.0 / math.sqrt(self.d_model)
        bound_out = 1.0 / math.sqrt(self.d_ff)
        for w, b, bound in (
            (self.w_in, self.b_in, bound_in),
            (self.w_gate, self.b_gate, bound_in),
            (self.w_out, self.b_out, bound_out),
        ):
            if w is not None and b is not None:
                nn.init.uniform_(w, -bound, bound)
                nn.init.uniform_(b, -bound, bound)

    def _hidden(self, up: Tensor, gate: Optional[Tensor]) -> Tensor:
        if gate is not None:
            return F.silu(gate) * up
        return _act(self.activation)(up)

    def per_expert(self) -> list[tuple[Optional[Tensor], ...]]:
        """Views (w_in, b_in, w_gate, b_gate, w_out, b_out) of each expert, made with
        one ``unbind`` per parameter. Indexing ``w_in[e]`` E times would make
        autograd build E full-size (E, d, f) zero gradients (O(E^2) memory traffic);
        ``unbind`` stacks the per-expert gradients once."""
        names = ("w_in", "b_in", "w_gate", "b_gate", "w_out", "b_out")
        columns = [
            getattr(self, n).unbind(0) if getattr(self, n) is not None else (None,) * self.n_experts
            for n in names
        ]
        return list(zip(*columns))

    def forward_expert(
        self, e: int, x: Tensor, weights: Optional[tuple[Optional[Tensor], ...]] = None
    ) -> Tensor:
        """Run expert e on x: (n, d_model) -> (n, d_model). Pass ``weights`` from
        :meth:`per_expert` when calling for many experts in one step."""
        if weights is None:
            weights = tuple(
                getattr(self, n)[e] if getattr(self, n) is not None else None
                for n in ("w_in", "b_in", "w_gate", "b_gate", "w_out", "b_out")
            )
        w_in, b_in, w_gate, b_gate, w_out, b_out = weights
        assert w_in is not None and b_in is not None and w_out is not None and b_out is not None
        dtype = x.dtype
        up = torch.addmm(b_in.to(dtype), x, w_in.to(dtype))
        gate = (
            torch.addmm(b_gate.to(dtype), x, w_gate.to(dtype))
            if w_gate is not None and b_gate is not None
            else None
        )
        return torch.addmm(b_out.to(dtype), self._hidden(up, gate), w_out.to(dtype))

    def forward_sorted(
        self, x: Tensor, rows: Tensor, row_weight: Tensor, sizes: list[int]
    ) -> Tensor:
        """Dispatch, experts and combine in one autograd op, for rows grouped by
        expert: row r reads token ``rows[r]`` of x (N, d_model); the first
        ``sizes[0]`` rows go to expert 0, and so on; each result is scaled by
        ``row_weight[r]`` and summed into its token. RETURNS: (N, d_model).

        Each expert's chain (gather, GEMM, activation, GEMM, scale, scatter-add;
        in backward their gradients) runs on its own rows while they are in cache,
        and weight gradients are written slice by slice into one (E, ...) buffer,
        which plain autograd over ``w[e]`` views cannot do without a stacking copy.
        """
        gate_w = self.w_gate if self.w_gate is not None else self.w_in
        gate_b = self.b_gate if self.b_gate is not None else self.b_in
        dtype = x.dtype
        args = (x, row_weight.to(dtype), self.w_in.to(dtype), self.b_in.to(dtype), gate_w.to(dtype),
                gate_b.to(dtype), self.w_out.to(dtype), self.b_out.to(dtype), rows, sizes, self.activation)
        if torch.is_grad_enabled() and (x.requires_grad or row_weight.requires_grad
                                        or any(p.requires_grad for p in self.parameters())):
            return _SortedExpertsFn.apply(*args)
        return _sorted_experts_inference(*args)

    def forward_padded(self, x: Tensor) -> Tensor:
        """All experts at once on a padded buffer: (E, C, d_model) -> (E, C, d_model)."""
        dtype = x.dtype
        up = torch.baddbmm(self.b_in.to(dtype).unsqueeze(1), x, self.w_in.to(dtype))
        gate = (
            torch.baddbmm(self.b_gate.to(dtype).unsqueeze(1), x, self.w_gate.to(dtype))
            if self.w_gate is not None and self.b_gate is not None
            else None
        )
        return torch.baddbmm(self.b_out.to(dtype).unsqueeze(1), self._hidden(up, gate), self.w_out.to(dtype))

    def forward_grouped_mm(self, x: Tensor, offs: Tensor, row_expert: Tensor) -> Tensor:
        """Grouped GEMM over packed rows: x (M, d_model), groups ending at ``offs``
        (E,) int32, ``row_expert`` (M,) the expert of each row (for the biases).
        Rows past ``offs[-1]`` come back unspecified; the caller masks them.
        Needs torch's grouped GEMM (bf16 on CUDA sm80+; torch 2.13 also has a CPU
        fallback for bf16)."""
        gmm = grouped_mm_fn()
        if gmm is None:
            raise RuntimeError(
                f"dispatch='grouped_mm' needs torch.nn.functional.grouped_mm (torch >= 2.8), "
                f"this is torch {torch.__version__}; use dispatch='padded'"
            )
        dtype = x.dtype
        up = gmm(x, self.w_in.to(dtype), offs=offs) + self.b_in.to(dtype)[row_expert]
        gate = None
        if self.w_gate is not None and self.b_gate is not None:
            gate = gmm(x, self.w_gate.to(dtype), offs=offs) + self.b_gate.to(dtype)[row_expert]
        hidden = self._hidden(up, gate)
        return gmm(hidden, self.w_out.to(dtype), offs=offs) + self.b_out.to(dtype)[row_expert]

    def extra_repr(self) -> str:
        return (
            f"n_experts={self.n_experts}, d_model={self.d_model}, d_ff={self.d_ff}, "
            f"activation={self.activation!r}"
        )


def grouped_mm_fn() -> Optional[Callable[..., Tensor]]:
    """``F.grouped_mm`` (public from torch 2.10) or ``torch._grouped_mm`` (2.8, 2.9)."""
    return getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def _spans(sizes: list[int]) -> list[tuple[int, int, int]]:
    spans, start = [], 0
    for e, n in enumerate(sizes):
        if n > 0:
            spans.append((e, start, start + n))
        start += n
    return spans


def _empty_with_zero_rows(like: Tensor, rows: list[int]) -> Tensor:
    out = torch.empty_like(like)
    if rows:
        out[rows] = 0
    return out


def _hidden_fwd(activation: str, up: Tensor, gate: Optional[Tensor]) -> Tensor:
    if gate is not None:
        return F.silu(gate) * up
    return F.gelu(up) if activation == "gelu" else F.silu(up)


def _hidden_bwd(
    activation: str, g_hidden: Tensor, up: Tensor, gate: Optional[Tensor]
) -> tuple[Tensor, Optional[Tensor]]:
    """Gradients wrt (up, gate) of :func:`_hidden_fwd`."""
    if gate is not None:
        sig = torch.sigmoid(gate)
        g_up = g_hidden * (gate * sig)
        g_gate = g_hidden * up * (sig * (1 + gate * (1 - sig)))
        return g_up, g_gate
    if activation == "gelu":
        return torch.ops.aten.gelu_backward(g_hidden, up), None
    return torch.ops.aten.silu_backward(g_hidden, up), None


# rows per step of the inference loop, as a number of floats per (rows, width) tensor:
# 2**18 fp32 = 1 MiB, so that a step's gathered rows, hidden states and outputs are
# still in cache for the next op (benchmarks/moe_inference.py)
_STEP_FLOATS = 1 << 18


def _expert_chain(e: int, xe: Tensor, w_in: Tensor, b_in: Tensor, w_gate: Tensor, b_gate: Tensor, w_out: Tensor,
                  b_out: Tensor, activation: str) -> tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
    """Expert e on its gathered rows xe: (up, gate (swiglu only), hidden, output)."""
    up = torch.addmm(b_in[e], xe, w_in[e])
    gate = torch.addmm(b_gate[e], xe, w_gate[e]) if activation == "swiglu" else None
    hidden = _hidden_fwd(activation, up, gate)
    return up, gate, hidden, torch.addmm(b_out[e], hidden, w_out[e])


def _sorted_experts_inference(
    x: Tensor, row_weight: Tensor, w_in: Tensor, b_in: Tensor, w_gate: Tensor, b_gate: Tensor, w_out: Tensor,
    b_out: Tensor, rows: Tensor, sizes: list[int], activation: str,
) -> Tensor:
    """What :class:`_SortedExpertsFn` computes (same arguments), without autograd:
    nothing is kept for a backward pass, and each expert's rows go through the chain
    (gather, GEMM, activation, GEMM, scale, scatter-add) a cache-sized step at a time,
    since that chain is bound by memory, not arithmetic, at the widths this package
    uses. Each row meets the same operations as in the autograd op, so the output is
    the same."""
    out = x.new_zeros(x.shape[0], w_out.shape[2])
    step = max(64, _STEP_FLOATS // max(w_in.shape[1], w_in.shape[2]))
    for e, a, b in _spans(sizes):
        for s in range(a, b, step):
            idx = rows[s:min(s + step, b)]
            y = _expert_chain(e, x.index_select(0, idx), w_in, b_in, w_gate, b_gate, w_out, b_out, activation)[3]
            out.index_add_(0, idx, y.mul_(row_weight[s:s + idx.shape[0], None]))
    return out


class _SortedExpertsFn(torch.autograd.Function):
    """See :meth:`Experts.forward_sorted`. Loops over experts, never tokens."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x, row_weight, w_in, b_in, w_gate, b_gate, w_out, b_out, rows, sizes, activation
    ):
        spans = _spans(sizes)
        swiglu = activation == "swiglu"
        out = x.new_zeros(x.shape[0], w_out.shape[2])
        ups, gates, hiddens, ys = [], [], [], []
        for e, a, b in spans:
            xe = x.index_select(0, rows[a:b])
            up, gate, hidden, y = _expert_chain(e, xe, w_in, b_in, w_gate, b_gate, w_out, b_out, activation)
            out.index_add_(0, rows[a:b], y * row_weight[a:b, None])
            ups.append(up)
            gates.append(gate)
            hiddens.append(hidden)
            ys.append(y)
        ctx.save_for_backward(x, row_weight, w_in, w_gate, w_out, rows)
        # intermediates, not inputs or outputs: safe to keep on ctx
        ctx.chunks = (ups, gates, hiddens, ys)
        ctx.spans = spans
        ctx.activation = activation
        ctx.swiglu = swiglu
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        x, row_weight, w_in, w_gate, w_out, rows = ctx.saved_tensors
        ups, gates, hiddens, ys = ctx.chunks
        spans, activation, swiglu = ctx.spans, ctx.activation, ctx.swiglu
        n_experts = w_in.shape[0]
        # every used expert's slice is overwritten; only idle experts need zeros
        used = {span[0] for span in spans}
        idle = [e for e in range(n_experts) if e not in used]
        g_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        g_rw = torch.zeros_like(row_weight)
        g_w_in = _empty_with_zero_rows(w_in, idle)
        g_w_out = _empty_with_zero_rows(w_out, idle)
        g_w_gate = _empty_with_zero_rows(w_gate, idle) if swiglu else None
        g_b_in = x.new_zeros(n_experts, w_in.shape[2])
        g_b_out = x.new_zeros(n_experts, w_out.shape[2])
        g_b_gate = x.new_zeros(n_experts, w_in.shape[2]) if swiglu else None
        for (e, a, b), up, gate, hidden, y in zip(spans, ups, gates, hiddens, ys):
            idx = rows[a:b]
            g_y = grad_out.index_select(0, idx)
            torch.sum(g_y * y, 1, out=g_rw[a:b])
            g_y = g_y * row_weight[a:b, None]
            torch.mm(hidden.t(), g_y, out=g_w_out[e])
            torch.sum(g_y, 0, out=g_b_out[e])
            g_up, g_gate = _hidden_bwd(activation, g_y @ w_out[e].t(), up, gate)
            xe = x.index_select(0, idx)
            torch.mm(xe.t(), g_up, out=g_w_in[e])
            torch.sum(g_up, 0, out=g_b_in[e])
            g_xe = g_up @ w_in[e].t() if g_x is not None else None
            if g_gate is not None and g_w_gate is not None and g_b_gate is not None:
                torch.mm(xe.t(), g_gate, out=g_w_gate[e])
                torch.sum(g_gate, 0, out=g_b_gate[e])
                if g_xe is not None:
                    g_xe.addmm_(g_gate, w_gate[e].t())
            if g_x is not None and g_xe is not None:
                g_x.index_add_(0, idx, g_xe)
        return g_x, g_rw, g_w_in, g_b_in, g_w_gate, g_b_gate, g_w_out, g_b_out, None, None, None


class DenseFFN(nn.Module):
    """One FFN, the dense baseline: with ``d_ff = k * d_ff_expert`` it has the same
    active parameters per token as a top-k MoE layer (x: (..., d_model) -> same)."""

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "gelu") -> None:
        super().__init__()
        _check_activation(activation)
        self.activation = activation
        self.fc_in = nn.Linear(d_model, d_ff)
        self.fc_gate: Optional[nn.Linear] = nn.Linear(d_model, d_ff) if activation == "swiglu" else None
        self.fc_out = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        up = self.fc_in(x)
        hidden = F.silu(self.fc_gate(x)) * up if self.fc_gate is not None else _act(self.activation)(up)
        return self.fc_out(hidden)


__all__ = ["ACTIVATIONS", "DenseFFN", "Experts", "grouped_mm_fn"]
