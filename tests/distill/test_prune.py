"""ml/torch/pruning.py, distill/prune.py and distill/transfer.py on small torch modules: pruning removes
exactly the chosen experts and neurons, really shrinks the tensors, and transfer
seeds a student with the teacher's weights."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save as st_save

from spacy_sparse_expert.distill.prune import rank_experts
from spacy_sparse_expert.distill.transfer import EncoderHashing, fold_rows, init_from_teacher
from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier
from spacy_sparse_expert.ml.torch.encoder import HashEncoder
from spacy_sparse_expert.ml.torch.pruning import (encoder_unit_magnitude, measure_moe_importance, merge_experts,
                                                  n_parameters, prune_encoder_units, prune_expert_units,
                                                  select_experts)

ROWS = [40, 20]


def classifier(n_experts: int = 4, k: int = 2, d_ff: int = 16, width: int = 8, rows=ROWS, d_hidden: int = 12,
               depth: int = 1) -> MoEDocClassifier:
    encoder = HashEncoder(sum(rows), width, depth=depth, d_hidden=d_hidden, dropout=0.0)
    return MoEDocClassifier(encoder, width=width, n_labels=3, n_experts=n_experts, k=k, d_ff=d_ff,
                            n_knowledge_ids=5, d_knowledge=4, bow_rows=64, dropout=0.0).eval()


def batch(n_docs: int = 3, length: int = 6, rows=ROWS, n_experts: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = n_docs * length
    ids = torch.cat([torch.randint(r, (n, 2), generator=g) + sum(rows[:j]) for j, r in enumerate(rows)], 1)
    starts = torch.arange(n_docs) * (length + 1) + 1
    packed = (starts[:, None] + torch.arange(length)[None]).reshape(-1)
    return {
        "enc": {"hash_ids": ids, "packed_pos": packed, "n_packed": int(n_docs * (length + 1) + 1)},
        "doc_index": torch.arange(n_docs).repeat_interleave(length), "n_docs": n_docs,
        "bow_ids": torch.randint(64, (n_docs * 4,), generator=g), "bow_offsets": torch.arange(n_docs) * 4,
        "bow_weights": torch.ones(n_docs * 4), "know_ids": torch.randint(5, (n,), generator=g),
        "know_offsets": torch.arange(n), "know_dense": torch.zeros(n, 0), "expert_bias": torch.zeros(n, n_experts),
        "label_bias": torch.zeros(n_docs, 3),
    }


def test_measure_importance_counts_routing_mass() -> None:
    model = classifier()
    imp = measure_moe_importance(model, [batch(), batch(seed=1)])
    assert imp.tokens == 36
    assert imp.experts.shape == (1, 4) and imp.units.shape == (1, 4, 16)
    assert float(imp.experts.sum()) == pytest.approx(36.0, rel=1e-5)  # top-k weights sum to 1 per token
    assert float(imp.expert_share().sum()) == pytest.approx(1.0)
    assert rank_experts(imp, 2) == sorted(imp.experts[0].topk(2).indices.tolist())


def test_select_experts_keeps_exactly_the_chosen_ones() -> None:
    model = classifier(n_experts=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    select_experts(model, [3, 1])
    moe = model.moe[0]
    assert model.n_experts == 2 and moe.n_experts == 2 and moe.k == 2
    assert torch.equal(moe.experts.w_in, before["moe.0.experts.w_in"][[3, 1]])
    assert torch.equal(moe.router.gate.weight, before["moe.0.router.gate.weight"][[3, 1]])
    out = model(**batch(n_experts=2))
    assert out.logits.shape == (3, 3) and set(out.expert_indices.flatten().tolist()) <= {0, 1}


def test_merge_experts_averages_dropped_into_the_most_similar_kept() -> None:
    model = classifier(n_experts=3)
    moe = model.moe[0]
    with torch.no_grad():
        moe.router.gate.weight[2] = moe.router.gate.weight[0] * 2  # expert 2 routes like expert 0
    mass = torch.tensor([3.0, 1.0, 1.0])
    merged = merge_experts(moe, [0, 1], mass)
    expected = (3 * moe.experts.w_in[0] + moe.experts.w_in[2]) / 4
    assert torch.allclose(merged.experts.w_in[0], expected, atol=1e-6)
    assert torch.equal(merged.experts.w_in[1], moe.experts.w_in[1])


def test_prune_expert_units_keeps_the_most_important_neurons() -> None:
    model = classifier(d_ff=16)
    imp = measure_moe_importance(model, [batch()])
    w_in = model.moe[0].experts.w_in.detach().clone()
    prune_expert_units(model, 5, imp.units)
    experts = model.moe[0].experts
    assert experts.d_ff == 5 and experts.w_in.shape == (4, 8, 5) and experts.w_out.shape == (4, 5, 8)
    for e in range(4):
        keep = imp.units[0, e].topk(5).indices.sort().values
        assert torch.equal(experts.w_in[e], w_in[e][:, keep])


def test_prune_encoder_units_is_structured_magnitude_pruning() -> None:
    model = classifier(d_hidden=12, depth=2)
    x = batch()
    full = model(**x).logits
    block = model.encoder.blocks[0]
    order = encoder_unit_magnitude(block).argsort(descending=True)
    kept_up = block.up.weight[order[:7].sort().values].detach().clone()
    assert prune_encoder_units(model.encoder, 12) == 2  # keeping every unit changes nothing
    assert torch.allclose(model(**x).logits, full, atol=1e-6)
    prune_encoder_units(model.encoder, 7)
    for b in model.encoder.blocks:
        assert b.up.weight.shape == (7, 8) and b.down.weight.shape == (8, 7)
    assert torch.equal(model.encoder.blocks[0].up.weight, kept_up)


def test_pruned_state_is_really_smaller() -> None:
    model = classifier(n_experts=4, d_ff=16, d_hidden=12)
    size = len(st_save(model.state_dict()))
    params = n_parameters(model)
    imp = measure_moe_importance(model, [batch()])
    select_experts(model, [0, 2])
    prune_expert_units(model, 4, imp.units[:, [0, 2]])
    prune_encoder_units(model.encoder, 3)
    assert n_parameters(model) < params
    assert len(st_save(model.state_dict())) < size
    assert not any("mask" in k or "orig" in k for k in model.state_dict())
    # the pruned module is an ordinary classifier of the smaller shape
    fresh = classifier(n_experts=2, d_ff=4, d_hidden=3)
    fresh.load_state_dict(model.state_dict())


def test_fold_rows_weights_by_hits() -> None:
    teacher = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # one attribute, 6 rows
    folded = fold_rows(teacher, [6], [3])
    assert torch.allclose(folded, (teacher[:3] + teacher[3:]) / 2)
    counts = torch.tensor([1.0, 0, 0, 3, 0, 0])
    folded = fold_rows(teacher, [6], [3], counts)
    assert torch.allclose(folded[0], (teacher[0] + 3 * teacher[3]) / 4)
    assert torch.allclose(folded[1], (teacher[1] + teacher[4]) / 2)  # no hits: plain mean
    with pytest.raises(ValueError, match="divide"):
        fold_rows(teacher, [6], [4])


def test_init_from_teacher_takes_top_experts_and_folded_embeddings() -> None:
    torch.manual_seed(0)
    teacher = classifier(n_experts=6, k=2, d_ff=16, rows=[40, 20], d_hidden=12, depth=2)
    student = classifier(n_experts=3, k=1, d_ff=8, rows=[20, 10], d_hidden=6, depth=1)
    imp = measure_moe_importance(teacher, [batch(n_experts=6)])
    top = rank_experts(imp, 3)
    hashing = EncoderHashing(["NORM", "SHAPE"], [40, 20], 2)
    result = init_from_teacher(student, teacher, teacher_experts=top, importance=imp,
                               student_hashing=EncoderHashing(["NORM", "SHAPE"], [20, 10], 2),
                               teacher_hashing=hashing)
    assert result.teacher_experts == top
    assert torch.equal(student.moe[0].router.gate.weight, teacher.moe[0].router.gate.weight[top])
    keep = imp.units[0, top[0]].topk(8).indices.sort().values
    assert torch.equal(student.moe[0].experts.w_in[0], teacher.moe[0].experts.w_in[top[0]][:, keep])
    t_embed = teacher.encoder.embed.weight
    assert torch.allclose(student.encoder.embed.weight[:20], (t_embed[:20] + t_embed[20:40]) / 2)
    assert torch.equal(student.bow.weight, teacher.bow.weight)
    assert student.encoder.blocks[0].up.weight.shape == (6, 8)
    assert any("folded" in part for part in result.parts)


def test_init_from_teacher_skips_what_does_not_fit() -> None:
    teacher = classifier(width=8)
    student = classifier(width=12, n_experts=2)
    before = student.moe[0].experts.w_in.detach().clone()
    imp = measure_moe_importance(teacher, [batch()])
    result = init_from_teacher(student, teacher, teacher_experts=[0, 1], importance=imp)
    assert result.teacher_experts is None
    assert torch.equal(student.moe[0].experts.w_in, before)
    assert torch.equal(student.bow.weight, teacher.bow.weight)  # the n-gram path still fits
