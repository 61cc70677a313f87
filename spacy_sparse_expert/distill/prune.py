"""Pruning a :class:`~..ml.torch.classifier.MoEDocClassifier` for distillation, pure
PyTorch. Every step builds smaller tensors (nothing is masked), so the pruned module
saves and loads as a smaller model of the same architecture:

* experts: measure each expert's routing mass on calibration batches, keep the most
  used ones in every MoE layer (:meth:`SparseMoE.select_experts`), optionally merging
  each dropped expert into the kept expert whose router row is closest;
* expert FFN neurons: keep the hidden units with the largest measured contribution
  (``ffn_unit_importance``, :meth:`SparseMoE.prune_ffn`);
* encoder FFN neurons: structured magnitude pruning of the window blocks' hidden
  units (score ``||W_up[u]|| * ||W_down[:, u]||``, the L2 magnitude of the unit's path),
  the pruned rows and columns cut out of the Linear layers.

All MoE layers keep the same experts: they share the per-token expert bias of the
rules, whose columns are expert ids.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ml.torch.classifier import MoEDocClassifier
from ..ml.torch.experts import Experts
from ..ml.torch.moe import SparseMoE
from ..ml.torch.pruning import expert_importance, ffn_unit_importance, top_experts, top_units


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
def measure_moe_importance(module: MoEDocClassifier, batches: Iterable[Dict[str, Any]],
                           on_output: Optional[Callable[[int, Any], None]] = None) -> MoEImportance:
    """Run ``module`` (in eval mode) on ``batches`` (keyword inputs of its forward) and
    measure, with its own routing, each expert's mass and each hidden unit's
    contribution in every MoE layer. ``on_output(i, output)`` sees each batch's output."""
    n_layers, n_experts = len(module.moe), module.n_experts
    d_ff = module.moe[0].d_ff if n_layers else 0
    experts = torch.zeros(n_layers, n_experts)
    units = torch.zeros(n_layers, n_experts, d_ff)
    tokens = 0

    def hook(layer: int):
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


def rank_experts(importance: MoEImportance, n_keep: int) -> List[int]:
    """The ``n_keep`` experts with the most routing mass over all layers, ascending ids."""
    return top_experts(importance.experts.sum(0), n_keep)


@torch.no_grad()
def merge_experts(moe: SparseMoE, keep: Sequence[int], mass: Tensor) -> SparseMoE:
    """A copy of ``moe`` whose kept experts absorb the dropped ones: each dropped
    expert goes to the kept expert with the most similar router row (cosine), and the
    kept expert's weights become the routing-mass weighted mean of its group. The
    result still has all E experts; :meth:`SparseMoE.select_experts` then drops."""
    keep_t = torch.as_tensor(list(keep), dtype=torch.long)
    gate = moe.router.gate.weight.detach().float().cpu()
    sim = F.normalize(gate, dim=1) @ F.normalize(gate[keep_t], dim=1).t()  # (E, n_keep)
    group = keep_t[sim.argmax(1)]
    group[keep_t] = keep_t  # a kept expert stays its own group
    weight = mass.float().cpu().clamp_min(1e-6)
    merged = moe.select_experts(list(range(moe.n_experts)))  # a copy
    experts: Experts = merged.experts
    for name in ("w_in", "b_in", "w_gate", "b_gate", "w_out", "b_out"):
        param = getattr(experts, name)
        if param is None:
            continue
        flat = param.detach().reshape(param.shape[0], -1).float().cpu()
        for e in keep_t.tolist():
            members = (group == e).nonzero().flatten()
            w = weight[members] / weight[members].sum()
            mean = (flat[members] * w[:, None]).sum(0)
            param[e].copy_(mean.reshape(param.shape[1:]).to(param.dtype))
    return merged


def select_experts(module: MoEDocClassifier, keep: Sequence[int], *, policy: str = "drop",
                   importance: Optional[MoEImportance] = None) -> None:
    """In place: every MoE layer keeps only experts ``keep`` (in that order).
    policy "merge" folds the dropped experts into the kept ones first (needs
    ``importance``)."""
    if policy not in ("drop", "merge"):
        raise ValueError(f"expert policy must be 'drop' or 'merge', got {policy!r}")
    for i in range(len(module.moe)):
        moe = module.moe[i]
        if policy == "merge":
            if importance is None:
                raise ValueError("merging experts needs their measured importance")
            moe = merge_experts(moe, keep, importance.experts[i])
        module.moe[i] = moe.select_experts(list(keep))
    module.n_experts = len(keep)


def prune_expert_units(module: MoEDocClassifier, d_ff: int, units: Tensor) -> None:
    """In place: each expert of layer i keeps its ``d_ff`` hidden units with the highest
    ``units[i]`` ((n_layers, E, d_ff_old) scores of the current experts)."""
    for i in range(len(module.moe)):
        module.moe[i] = module.moe[i].prune_ffn(top_units(units[i], d_ff))


def encoder_unit_magnitude(block: nn.Module) -> Tensor:
    """(d_hidden,) L2 magnitude of each hidden unit's path through a window block:
    ``||up.weight[u]|| * ||down.weight[:, u]||``."""
    return block.up.weight.detach().norm(dim=1) * block.down.weight.detach().norm(dim=0)


@torch.no_grad()
def prune_linear_pair(up: nn.Linear, down: nn.Linear, keep: Tensor) -> tuple[nn.Linear, nn.Linear]:
    """New (up, down) Linear layers keeping only hidden units ``keep`` (1-D long):
    rows of ``up``, columns of ``down``."""
    keep = keep.to(up.weight.device)
    new_up = nn.Linear(up.in_features, int(keep.numel())).to(up.weight.device, up.weight.dtype)
    new_down = nn.Linear(int(keep.numel()), down.out_features).to(down.weight.device, down.weight.dtype)
    new_up.weight.copy_(up.weight[keep])
    new_up.bias.copy_(up.bias[keep])
    new_down.weight.copy_(down.weight[:, keep])
    new_down.bias.copy_(down.bias)
    return new_up, new_down


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
    "encoder_unit_magnitude",
    "measure_moe_importance",
    "merge_experts",
    "n_parameters",
    "prune_encoder_units",
    "prune_expert_units",
    "prune_linear_pair",
    "rank_experts",
    "select_experts",
]
