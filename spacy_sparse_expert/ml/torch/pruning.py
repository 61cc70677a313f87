"""Pruning a :class:`~.classifier.MoEDocClassifier`, pure PyTorch: the one place that
cuts experts, expert FFN units and encoder hidden units (distillation decides what to
keep; ``distill/prune.py``). Every function builds smaller tensors (nothing is masked),
so a pruned module saves and loads as a smaller model of the same architecture.

* importance, measured on calibration tokens in eval mode without gradients: each
  expert's routing mass (``expert_importance``) and each expert hidden unit's
  contribution (``ffn_unit_importance``), for every MoE layer (``measure_moe_importance``);
* experts: ``select_moe_experts`` keeps some experts of one layer with their router
  rows; ``select_experts`` does it for every layer of a classifier (all MoE layers
  keep the same experts: they share the rules' per-token expert bias, whose columns
  are expert ids), optionally merging each dropped expert into the kept expert whose
  router row is closest (``merge_experts``);
* expert FFN units: ``prune_moe_ffn`` / ``prune_expert_units``;
* encoder hidden units: structured magnitude pruning of a HashEncoder's window blocks
  (score ``||up.weight[u]|| * ||down.weight[:, u]||``), ``prune_encoder_units``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .experts import Experts
from .moe import SparseMoE
from .router import TopKRouter

if TYPE_CHECKING:
    from .classifier import MoEDocClassifier

_EXPERT_PARAMS = ("w_in", "b_in", "w_gate", "b_gate", "w_out", "b_out")


# -- importance --------------------------------------------------------------------
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
    layer output. x: (N, d_model). RETURNS: (E, d_ff) fp32."""
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


class MoEImportance(NamedTuple):
    """experts: (n_layers, E) routing mass per expert (sum over tokens of its top-k
    weight); units: (n_layers, E, d_ff) contribution of each expert hidden unit;
    tokens: number of calibration tokens."""

    experts: Tensor
    units: Tensor
    tokens: int

    def expert_share(self) -> Tensor:
        """(E,) each expert's share of the routing mass, summed over layers (sums to 1)."""
        total = self.experts.sum(0)
        return total / total.sum().clamp_min(1e-12)


@torch.no_grad()
def measure_moe_importance(module: "MoEDocClassifier", batches: Iterable[Dict[str, Any]],
                           on_output: Optional[Callable[[int, Any], None]] = None) -> MoEImportance:
    """Run ``module`` (in eval mode) on ``batches`` (keyword inputs of its forward) and
    measure, with its own routing, each expert's mass and each hidden unit's
    contribution in every MoE layer. ``on_output(i, output)`` sees each batch's output,
    so one pass can serve a caller that also wants the predictions."""
    n_layers, n_experts = len(module.moe), module.n_experts
    d_ff = module.moe[0].d_ff if n_layers else 0
    experts = torch.zeros(n_layers, n_experts)
    units = torch.zeros(n_layers, n_experts, d_ff)
    tokens = 0

    # a pre-hook sees each MoE layer's own inputs, which the classifier computes inside
    def hook(layer: int) -> Callable[[nn.Module, tuple], None]:
        def pre_hook(moe: nn.Module, args: tuple) -> None:
            x, knowledge, bias = (list(args) + [None, None])[:3]
            experts[layer] += expert_importance(moe, x, knowledge, bias).float().cpu()
            units[layer] += ffn_unit_importance(moe, x, knowledge, bias).float().cpu()
        return pre_hook

    handles = [moe.register_forward_pre_hook(hook(i)) for i, moe in enumerate(module.moe)]
    was_training = module.training
    module.eval()
    try:
        for i, batch in enumerate(batches):
            tokens += int(batch["doc_index"].shape[0])
            out = module(**batch)
            if on_output is not None:
                on_output(i, out)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return MoEImportance(experts, units, tokens)


def top_units(scores: Tensor, d_ff_new: int) -> Tensor:
    """The ``d_ff_new`` highest-scoring hidden units of each expert, in ascending
    index order (keeps memory access monotone). scores: (E, d_ff).
    RETURNS: (E, d_ff_new) long, for :func:`prune_moe_ffn`."""
    if not 0 < d_ff_new <= scores.shape[1]:
        raise ValueError(f"d_ff_new must be in [1, {scores.shape[1]}], got {d_ff_new}")
    return scores.topk(d_ff_new, dim=1).indices.sort(dim=1).values


def top_experts(scores: Tensor, n_keep: int) -> List[int]:
    """The ``n_keep`` experts with the most routing mass, in ascending id order, for
    :func:`select_moe_experts`. scores: (E,)."""
    if not 0 < n_keep <= scores.shape[0]:
        raise ValueError(f"n_keep must be in [1, {scores.shape[0]}], got {n_keep}")
    return sorted(scores.topk(n_keep).indices.tolist())


# -- one MoE layer -----------------------------------------------------------------
@torch.no_grad()
def _slice_router(router: TopKRouter, keep: Tensor) -> TopKRouter:
    """A router scoring only experts ``keep`` ((E_new,) long), in that order:
    gate rows (E, d_model) -> (E_new, d_model), knowledge rows (E, n_k) -> (E_new, n_k)."""
    new = TopKRouter(router.d_model, int(keep.numel()), min(router.k, int(keep.numel())),
                     n_knowledge=router.n_knowledge, jitter_noise=router.jitter_noise)
    new = new.to(device=router.gate.weight.device, dtype=router.gate.weight.dtype)
    new.gate.weight.copy_(router.gate.weight[keep])
    new.gate.bias.copy_(router.gate.bias[keep])
    if router.knowledge_proj is not None and new.knowledge_proj is not None:
        new.knowledge_proj.weight.copy_(router.knowledge_proj.weight[keep])
    return new


@torch.no_grad()
def _slice_experts(experts: Experts, keep: Optional[Tensor], hidden_keep: Optional[Tensor]) -> Experts:
    """A copy with experts ``keep`` ((E_new,) long; None = all) and, per kept expert,
    hidden units ``hidden_keep`` ((E_new, d_ff_new) long; None = all). Weights:
    w_in, w_gate (E, d_model, d_ff); b_in, b_gate (E, d_ff); w_out (E, d_ff, d_model);
    b_out (E, d_model)."""
    index = keep if keep is not None else torch.arange(experts.n_experts, device=experts.w_in.device)
    d_ff = experts.d_ff if hidden_keep is None else int(hidden_keep.shape[1])
    new = Experts(int(index.numel()), experts.d_model, d_ff, activation=experts.activation)
    new = new.to(device=experts.w_in.device, dtype=experts.w_in.dtype)
    d_model = experts.d_model
    for name in _EXPERT_PARAMS:
        src = getattr(experts, name)
        if src is None:
            continue
        value = src[index]
        if hidden_keep is not None:
            idx = hidden_keep.to(value.device)
            if name in ("w_in", "w_gate"):
                value = torch.gather(value, 2, idx[:, None, :].expand(-1, d_model, -1))
            elif name in ("b_in", "b_gate"):
                value = torch.gather(value, 1, idx)
            elif name == "w_out":
                value = torch.gather(value, 1, idx[:, :, None].expand(-1, -1, d_model))
        getattr(new, name).copy_(value)
    return new


def _empty_like(moe: SparseMoE, *, n_experts: int, k: int, d_ff: int) -> SparseMoE:
    return SparseMoE(moe.d_model, d_ff, n_experts, k, n_knowledge=moe.n_knowledge,
                     capacity_factor=moe.capacity_factor, activation=moe.activation,
                     jitter_noise=moe.router.jitter_noise, dispatch=moe.dispatch,
                     ).to(device=moe.experts.w_in.device, dtype=moe.experts.w_in.dtype)


def select_moe_experts(moe: SparseMoE, keep: Union[Sequence[int], Tensor]) -> SparseMoE:
    """A new layer with only the experts ``keep`` ((E_new,) ids, in that order), their
    router rows and weights copied; k becomes min(k, E_new). A caller passing
    ``router_bias`` (..., E) must slice its last dimension with the same ``keep``."""
    keep_t = torch.as_tensor(keep, dtype=torch.long, device=moe.experts.w_in.device).reshape(-1)
    if keep_t.numel() == 0:
        raise ValueError("select_moe_experts needs at least one expert to keep, got []")
    new = _empty_like(moe, n_experts=int(keep_t.numel()), k=min(moe.k, int(keep_t.numel())), d_ff=moe.d_ff)
    new.router = _slice_router(moe.router, keep_t)
    new.experts = _slice_experts(moe.experts, keep_t, None)
    return new


def prune_moe_ffn(moe: SparseMoE, keep_per_expert: Tensor) -> SparseMoE:
    """A new layer whose experts keep only hidden units ``keep_per_expert``
    ((E, d_ff_new) long indices into d_ff); the router is copied unchanged."""
    if keep_per_expert.dim() != 2 or keep_per_expert.shape[0] != moe.n_experts:
        raise ValueError(f"keep_per_expert must have shape (n_experts={moe.n_experts}, d_ff_new), "
                         f"got {tuple(keep_per_expert.shape)}")
    new = _empty_like(moe, n_experts=moe.n_experts, k=moe.k, d_ff=int(keep_per_expert.shape[1]))
    new.router.load_state_dict(moe.router.state_dict())
    new.experts = _slice_experts(moe.experts, None, keep_per_expert.long())
    return new


@torch.no_grad()
def merge_experts(moe: SparseMoE, keep: Sequence[int], mass: Tensor) -> SparseMoE:
    """A copy of ``moe`` (still E experts) whose kept experts absorb the dropped ones:
    each dropped expert goes to the kept expert with the most similar router row
    (cosine), and the kept expert's weights become the routing-mass (``mass``: (E,))
    weighted mean of its group. :func:`select_moe_experts` then drops the others."""
    keep_t = torch.as_tensor(list(keep), dtype=torch.long)
    gate = moe.router.gate.weight.detach().float().cpu()
    sim = F.normalize(gate, dim=1) @ F.normalize(gate[keep_t], dim=1).t()  # (E, n_keep)
    group = keep_t[sim.argmax(1)]
    group[keep_t] = keep_t  # a kept expert stays its own group
    weight = mass.float().cpu().clamp_min(1e-6)
    merged = select_moe_experts(moe, list(range(moe.n_experts)))  # a copy
    for name in _EXPERT_PARAMS:
        param = getattr(merged.experts, name)
        if param is None:
            continue
        flat = param.detach().reshape(param.shape[0], -1).float().cpu()
        for e in keep_t.tolist():
            members = (group == e).nonzero().flatten()
            w = weight[members] / weight[members].sum()
            param[e].copy_((flat[members] * w[:, None]).sum(0).reshape(param.shape[1:]).to(param.dtype))
    return merged


# -- a whole classifier ------------------------------------------------------------
def select_experts(module: "MoEDocClassifier", keep: Sequence[int], *, policy: str = "drop",
                   importance: Optional[MoEImportance] = None) -> None:
    """In place: every MoE layer keeps only experts ``keep`` (in that order); E becomes
    len(keep). policy "merge" folds the dropped experts into the kept ones first (needs
    ``importance``)."""
    if policy not in ("drop", "merge"):
        raise ValueError(f"expert policy must be 'drop' or 'merge', got {policy!r}")
    if policy == "merge" and importance is None:
        raise ValueError("merging experts needs their measured importance")
    for i in range(len(module.moe)):
        moe = module.moe[i]
        if policy == "merge" and importance is not None:
            moe = merge_experts(moe, keep, importance.experts[i])
        module.moe[i] = select_moe_experts(moe, list(keep))
    module.n_experts = len(keep)


def prune_expert_units(module: "MoEDocClassifier", d_ff: int, units: Tensor) -> None:
    """In place: each expert of layer i keeps its ``d_ff`` hidden units with the highest
    ``units[i]`` (units: (n_layers, E, d_ff_old) scores of the current experts)."""
    for i in range(len(module.moe)):
        module.moe[i] = prune_moe_ffn(module.moe[i], top_units(units[i], d_ff))


def encoder_unit_magnitude(block: nn.Module) -> Tensor:
    """(d_hidden,) L2 magnitude of each hidden unit's path through a window block:
    ``||up.weight[u]|| * ||down.weight[:, u]||`` (up: width -> d_hidden, down: back)."""
    return block.up.weight.detach().norm(dim=1) * block.down.weight.detach().norm(dim=0)


@torch.no_grad()
def prune_linear_pair(up: nn.Linear, down: nn.Linear, keep: Tensor) -> tuple[nn.Linear, nn.Linear]:
    """New (up, down) Linear layers keeping only hidden units ``keep`` ((h_new,) long):
    up (d_in -> h) becomes d_in -> h_new (rows), down (h -> d_out) h_new -> d_out (columns)."""
    keep = keep.to(up.weight.device)
    new_up = nn.Linear(up.in_features, int(keep.numel())).to(up.weight.device, up.weight.dtype)
    new_down = nn.Linear(int(keep.numel()), down.out_features).to(down.weight.device, down.weight.dtype)
    new_up.weight.copy_(up.weight[keep])
    new_up.bias.copy_(up.bias[keep])
    new_down.weight.copy_(down.weight[:, keep])
    new_down.bias.copy_(down.bias)
    return new_up, new_down


def encoder_hidden(encoder: nn.Module) -> Optional[int]:
    """d_hidden of an encoder's window blocks; None for an encoder without blocks."""
    blocks = getattr(encoder, "blocks", None)
    return int(blocks[0].up.out_features) if blocks else None


def prune_encoder_units(encoder: nn.Module, d_hidden: int) -> int:
    """In place: every window block of a HashEncoder keeps its ``d_hidden`` hidden units
    of largest magnitude. RETURNS the number of blocks pruned (0 for encoders without
    window blocks)."""
    blocks = getattr(encoder, "blocks", None)
    if not blocks:
        return 0
    for block in blocks:
        if not 0 < d_hidden <= block.up.out_features:
            raise ValueError(f"d_hidden must be in [1, {block.up.out_features}], got {d_hidden}")
        keep = encoder_unit_magnitude(block).topk(d_hidden).indices.sort().values
        block.up, block.down = prune_linear_pair(block.up, block.down, keep)
    return len(blocks)


def n_parameters(module: nn.Module) -> int:
    """Number of parameters (buffers such as the n-gram idf not counted)."""
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "MoEImportance",
    "encoder_hidden",
    "encoder_unit_magnitude",
    "expert_importance",
    "ffn_unit_importance",
    "measure_moe_importance",
    "merge_experts",
    "n_parameters",
    "prune_encoder_units",
    "prune_expert_units",
    "prune_linear_pair",
    "prune_moe_ffn",
    "select_experts",
    "select_moe_experts",
    "top_experts",
    "top_units",
]
