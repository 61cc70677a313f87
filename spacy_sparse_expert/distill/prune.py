"""The pruning policy of distillation: which experts and how many hidden units a
student keeps, decided from its measured usage and the ``[distill.prune]`` settings.
The cutting itself (smaller tensors, nothing masked) is ``ml/torch/pruning.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

from ..errors import Errors
from ..ml.torch.classifier import MoEDocClassifier
from ..ml.torch.pruning import (MoEImportance, encoder_hidden, measure_moe_importance, n_parameters,
                                prune_encoder_units, prune_expert_units, select_experts, top_experts)
from .config import PruneSettings


@dataclass
class PruneReport:
    """What pruning kept: experts (old ids), each expert's routing share before, expert
    d_ff and encoder d_hidden before -> after, parameters before -> after."""

    experts: List[int]
    expert_share: List[float]
    d_ff: List[int]
    d_hidden: List[Optional[int]]
    params: List[int]


def rank_experts(importance: MoEImportance, n_keep: int) -> List[int]:
    """The ``n_keep`` experts with the most routing mass over all layers, ascending ids."""
    return top_experts(importance.experts.sum(0), n_keep)


def experts_to_keep(share: List[float], prune: PruneSettings) -> List[int]:
    """Experts whose routing share is at least ``min_expert_share``, at most
    ``n_experts`` of them (the most used), ascending ids. Raises E077 for none."""
    keep = [e for e, s in enumerate(share) if s >= prune.min_expert_share]
    if prune.n_experts is not None and len(keep) > prune.n_experts:
        keep = sorted(sorted(keep, key=lambda e: -share[e])[:prune.n_experts])
    if not keep:
        raise ValueError(Errors.E077.format(key="prune.min_expert_share", value=prune.min_expert_share,
                                            reason=f"no expert has that share (shares: {share})"))
    return keep


def prune_module(module: MoEDocClassifier, batches: Iterable[Dict[str, Any]], prune: PruneSettings, *,
                 expert_policy: str) -> PruneReport:
    """Prune ``module`` in place by the ``[distill.prune]`` settings, measuring expert
    usage and unit importance with its own routing on ``batches`` (keyword inputs of
    its forward). Shapes before pruning are read from the module itself."""
    before = n_parameters(module)
    importance = measure_moe_importance(module, batches)
    share = [float(s) for s in importance.expert_share()]
    keep = experts_to_keep(share, prune)
    if len(keep) < module.n_experts:
        select_experts(module, keep, policy=expert_policy, importance=importance)
    d_ff_old = module.moe[0].d_ff if len(module.moe) else 0
    d_ff = max(1, int(round(d_ff_old * prune.ffn_keep))) if d_ff_old else 0
    if len(module.moe) and d_ff < d_ff_old:
        prune_expert_units(module, d_ff, importance.units[:, keep])
    d_hidden = encoder_hidden(module.encoder)
    new_hidden = d_hidden
    if d_hidden is not None and prune.encoder_keep < 1.0:
        new_hidden = max(1, int(round(d_hidden * prune.encoder_keep)))
        prune_encoder_units(module.encoder, new_hidden)
    return PruneReport(keep, [round(s, 4) for s in share], [d_ff_old, d_ff], [d_hidden, new_hidden],
                       [before, n_parameters(module)])


__all__ = ["PruneReport", "experts_to_keep", "prune_module", "rank_experts"]
