from __future__ import annotations

import pytest
import torch

from spacy_sparse_expert.ml.torch import SparseMoE
from spacy_sparse_expert.ml.torch.pruning import prune_moe_ffn, select_moe_experts

D_MODEL, D_FF, N_KNOW = 16, 24, 5


def make_moe(activation: str = "gelu") -> SparseMoE:
    torch.manual_seed(0)
    moe = SparseMoE(D_MODEL, D_FF, 4, 2, n_knowledge=N_KNOW, activation=activation)
    with torch.no_grad():
        moe.router.knowledge_proj.weight.normal_()
    return moe


def test_select_experts_matches_on_tokens_routed_to_kept_experts() -> None:
    moe = make_moe()
    x, kn = torch.randn(200, D_MODEL), torch.randn(200, N_KNOW)
    keep = [3, 1, 2]
    small = select_moe_experts(moe, keep)
    assert small.n_experts == 3 and small.k == 2
    assert small.router.gate.weight.shape == (3, D_MODEL)
    full = moe(x, kn)
    # renormalised top-k weights do not depend on the dropped experts' logits
    inside = torch.isin(full.expert_indices, torch.tensor(keep)).all(-1)
    assert inside.sum() > 10
    out = small(x, kn)
    torch.testing.assert_close(out.output[inside], full.output[inside])
    remap = torch.tensor(keep)[out.expert_indices[inside]]
    assert torch.equal(remap, full.expert_indices[inside])
    # router logits are the kept columns
    torch.testing.assert_close(out.router_logits, full.router_logits[:, keep])


def test_select_experts_caps_k_and_rejects_empty() -> None:
    moe = make_moe()
    assert select_moe_experts(moe, [2]).k == 1
    with pytest.raises(ValueError, match="at least one"):
        select_moe_experts(moe, [])


@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_prune_ffn_permutation_is_lossless(activation: str) -> None:
    moe = make_moe(activation)
    x, kn = torch.randn(30, D_MODEL), torch.randn(30, N_KNOW)
    perm = torch.stack([torch.randperm(D_FF) for _ in range(4)])
    torch.testing.assert_close(prune_moe_ffn(moe, perm)(x, kn).output, moe(x, kn).output)


def test_prune_ffn_drops_dead_units_exactly() -> None:
    moe = make_moe()
    keep = torch.stack([torch.arange(0, D_FF, 2) + (e % 2) for e in range(4)])  # (4, 12)
    with torch.no_grad():  # silence the units that will be removed
        for e in range(4):
            dead = torch.ones(D_FF, dtype=torch.bool)
            dead[keep[e]] = False
            moe.experts.w_out[e, dead] = 0.0
    small = prune_moe_ffn(moe, keep)
    assert small.d_ff == 12 and small.experts.w_in.shape == (4, D_MODEL, 12)
    x, kn = torch.randn(30, D_MODEL), torch.randn(30, N_KNOW)
    torch.testing.assert_close(small(x, kn).output, moe(x, kn).output)
    with pytest.raises(ValueError, match="keep_per_expert"):
        prune_moe_ffn(moe, keep[:2])


def test_importance_helpers_pick_what_matters() -> None:
    from spacy_sparse_expert.ml.torch.pruning import (
        expert_importance,
        ffn_unit_importance,
        top_experts,
        top_units,
    )

    moe = make_moe()
    x, kn = torch.randn(50, D_MODEL), torch.randn(50, N_KNOW)
    bias = torch.tensor([0.0, 0.0, 5.0, 5.0])  # experts 2 and 3 take almost everything
    mass = expert_importance(moe, x, kn, bias)
    assert mass.shape == (4,)
    torch.testing.assert_close(mass.sum(), torch.tensor(50.0))
    assert top_experts(mass, 2) == [2, 3]
    with torch.no_grad():
        moe.experts.w_out[:, :4] = 0.0  # units 0-3 contribute nothing
    scores = ffn_unit_importance(moe, x, kn)
    assert scores.shape == (4, D_FF) and (scores[:, :4] == 0).all()
    keep = top_units(scores, D_FF - 4)
    assert keep.shape == (4, D_FF - 4) and (keep >= 4).all()
    torch.testing.assert_close(prune_moe_ffn(moe, keep)(x, kn).output, moe(x, kn).output)
    with pytest.raises(ValueError, match="d_ff_new"):
        top_units(scores, 0)
