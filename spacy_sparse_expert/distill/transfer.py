"""Initialise a student classifier from its teacher's weights where shapes allow, in
torch (the hashing compared is read from the built models' featurizers, not from
config dicts). What carries over (each part only when it fits; the rest keeps its
fresh initialisation):

* the MoE layers (same token width and knowledge width): the teacher's most used
  experts, ranked by the teacher's own routing on the training data, with their
  router rows, narrowed to the student's ``d_ff`` by measured unit importance;
* the hashed embedding table: copied when the hashing matches, or *folded* when each
  of the student's per-attribute row counts divides the teacher's. The featurizer maps
  a key to ``hash % rows``, so student row i of an attribute collects teacher rows
  ``i, i + r, i + 2r, ...``; it starts as their mean weighted by how often the training
  tokens hit each of them;
* the encoder's window blocks (same width), structured-magnitude pruned to the
  student's ``d_hidden``;
* every other tensor with the same name and shape: the n-gram path (same rows and
  n-gram size) and its idf, the knowledge embedding, norms, pooling, output layer.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..ml.featurize import HashFeaturizer
from ..ml.torch.classifier import MoEDocClassifier
from ..ml.torch.pruning import MoEImportance, prune_encoder_units, prune_expert_units, select_experts


@dataclass
class EncoderHashing:
    """How token ids are hashed into the embedding table (a HashEncoder's featurizer)."""

    attrs: List[str]
    rows: List[int]
    n_hashes: int
    seed: int = 0

    @classmethod
    def of(cls, featurizer: Any) -> Optional["EncoderHashing"]:
        """The hashing of a built model's token featurizer (``model.attrs
        ["token_featurizer"]``); None for encoders that do not hash (transformers)."""
        if not isinstance(featurizer, HashFeaturizer):
            return None
        return cls(list(featurizer.attrs), [int(r) for r in featurizer.rows], int(featurizer.n_hashes),
                   int(featurizer.seed))


@dataclass
class Transfer:
    """What was copied. teacher_experts: the teacher expert behind each student expert
    (None if the MoE was not transferred); parts: names of the transferred parts."""

    teacher_experts: Optional[List[int]] = None
    parts: List[str] = field(default_factory=list)


def fold_rows(teacher: Tensor, teacher_rows: Sequence[int], student_rows: Sequence[int],
              counts: Optional[Tensor] = None) -> Tensor:
    """Fold a hashed embedding table. teacher: (sum(teacher_rows), width); each student
    attribute j has ``student_rows[j]`` rows dividing ``teacher_rows[j]``; counts:
    (sum(teacher_rows),) hits per teacher row (None = plain mean).
    RETURNS (sum(student_rows), width)."""
    out, start = [], 0
    counts = torch.ones(teacher.shape[0]) if counts is None else counts.float()
    for big, small in zip(teacher_rows, student_rows):
        if big % small:
            raise ValueError(f"student rows {small} do not divide teacher rows {big}")
        block = teacher[start:start + big].float().reshape(big // small, small, -1)
        w = counts[start:start + big].to(block.device).reshape(big // small, small, 1)
        total = w.sum(0)
        mean = block.mean(0)
        weighted = (block * w).sum(0) / total.clamp_min(1e-12)
        out.append(torch.where(total > 0, weighted, mean).to(teacher.dtype))
        start += big
    return torch.cat(out)


@torch.no_grad()
def init_from_teacher(
    student: MoEDocClassifier,
    teacher: MoEDocClassifier,
    *,
    teacher_experts: Optional[Sequence[int]] = None,
    importance: Optional[MoEImportance] = None,
    expert_policy: str = "drop",
    student_hashing: Optional[EncoderHashing] = None,
    teacher_hashing: Optional[EncoderHashing] = None,
    row_counts: Optional[Tensor] = None,
    same_ngrams: bool = True,
    knowledge_rows: Optional[Tuple[Sequence[int], Sequence[int]]] = None,
    knowledge_cols: Optional[Sequence[int]] = None,
) -> Transfer:
    """Copy the teacher's weights into ``student`` where they fit (module docstring).

    teacher_experts: the teacher experts to keep, one per student expert (e.g.
        ``rank_experts(importance, student.n_experts)``); None skips the MoE.
    importance: the teacher's measured importance (needed for the MoE part).
    expert_policy: "drop" or "merge" the teacher's other experts.
    student_hashing, teacher_hashing: the encoders' hashing (None skips the table).
    row_counts: (teacher rows,) hits per embedding row on the training data (folding).
    same_ngrams: the two n-gram paths hash the same n-grams (same ngram_size).
    knowledge_rows: (student ids, teacher ids) of the knowledge ids both have (same
        type, predicate, rule or flag), for the knowledge embedding and linear path.
    knowledge_cols: the teacher's router knowledge input behind each of the student's
        (the student may lack the KB's graph features).
    """
    result = Transfer()
    target = student.state_dict()
    source = teacher.state_dict()
    taken: Dict[str, Tensor] = {}

    # MoE: the teacher's chosen experts, narrowed to the student's d_ff
    n_layers = min(len(student.moe), len(teacher.moe))
    if teacher_experts is not None and importance is not None and n_layers:
        s_moe, t_moe = student.moe[0], teacher.moe[0]
        fits = (s_moe.d_model == t_moe.d_model and s_moe.activation == t_moe.activation
                and s_moe.d_ff <= t_moe.d_ff and len(teacher_experts) == student.n_experts)
        if fits:
            pruned = copy.deepcopy(teacher)
            pruned.moe = nn.ModuleList(list(pruned.moe)[:n_layers])
            select_experts(pruned, teacher_experts, policy=expert_policy, importance=importance)
            keep = torch.as_tensor(list(teacher_experts), dtype=torch.long)
            if s_moe.d_ff < t_moe.d_ff:
                prune_expert_units(pruned, s_moe.d_ff, importance.units[:n_layers, keep])
            for i in range(n_layers):
                for key, value in pruned.moe[i].state_dict().items():
                    name = f"moe.{i}.{key}"
                    if key == "router.knowledge_proj.weight" and value.shape != target[name].shape:
                        # the knowledge inputs differ: keep the ones both have, the rest
                        # stays at its neutral zero initialisation
                        if knowledge_cols is None or len(knowledge_cols) != target[name].shape[1]:
                            continue
                        value = value[:, torch.as_tensor(list(knowledge_cols), dtype=torch.long)]
                    taken[name] = value
            result.teacher_experts = [int(e) for e in teacher_experts]
            result.parts.append(f"moe ({n_layers} layer(s), teacher experts {result.teacher_experts})")

    # hashed embedding table: copy or fold
    if student_hashing is not None and teacher_hashing is not None and "encoder.embed.weight" in target:
        s_w, t_w = target["encoder.embed.weight"], source.get("encoder.embed.weight")
        same_keys = (student_hashing.attrs == teacher_hashing.attrs
                     and student_hashing.n_hashes == teacher_hashing.n_hashes
                     and student_hashing.seed == teacher_hashing.seed)
        if t_w is not None and same_keys and s_w.shape[1] == t_w.shape[1]:
            if student_hashing.rows == teacher_hashing.rows:
                taken["encoder.embed.weight"] = t_w
                result.parts.append("hash embeddings (copied)")
            elif all(big % small == 0 for big, small in zip(teacher_hashing.rows, student_hashing.rows)):
                taken["encoder.embed.weight"] = fold_rows(t_w, teacher_hashing.rows, student_hashing.rows,
                                                          row_counts)
                result.parts.append("hash embeddings (folded)")

    # window blocks: same width; narrowed by magnitude to the student's d_hidden
    s_blocks = getattr(student.encoder, "blocks", None)
    t_blocks = getattr(teacher.encoder, "blocks", None)
    if s_blocks and t_blocks and "encoder.embed.weight" in taken:
        if s_blocks[0].up.in_features == t_blocks[0].up.in_features \
                and s_blocks[0].depthwise.weight.shape == t_blocks[0].depthwise.weight.shape \
                and s_blocks[0].up.out_features <= t_blocks[0].up.out_features:
            encoder = copy.deepcopy(teacher.encoder)
            encoder.blocks = nn.ModuleList(list(encoder.blocks)[:len(s_blocks)])
            prune_encoder_units(encoder, s_blocks[0].up.out_features)
            for key, value in encoder.state_dict().items():
                if key.startswith("blocks."):
                    taken[f"encoder.{key}"] = value
            result.parts.append(f"encoder blocks ({min(len(s_blocks), len(t_blocks))})")

    # knowledge ids both models have: their rows of the knowledge embedding and path
    if knowledge_rows is not None and len(knowledge_rows[0]):
        s_rows = torch.as_tensor(list(knowledge_rows[0]), dtype=torch.long)
        t_rows = torch.as_tensor(list(knowledge_rows[1]), dtype=torch.long)
        for key in ("knowledge_bag.weight", "know_bow"):
            if key in target and key in source and target[key].shape[1] == source[key].shape[1]:
                value = target[key].clone()
                value[s_rows] = source[key][t_rows].to(value.dtype)
                taken[key] = value
        result.parts.append(f"knowledge ids ({len(s_rows)} shared)")

    # everything else with equal name and shape (never a half-transferred MoE or encoder)
    for key, value in source.items():
        if key in taken or key not in target or target[key].shape != value.shape:
            continue
        if key.startswith("moe.") or key.startswith("encoder.blocks.") or key == "encoder.embed.weight":
            continue  # only through the checks above
        if key.startswith("bow") and not same_ngrams:
            continue
        if key.startswith("encoder.") and "encoder.embed.weight" not in taken:
            continue  # a norm fitted to other embeddings
        taken[key] = value
    special = ("moe.", "encoder.blocks", "encoder.embed.") + (
        ("knowledge_bag.", "know_bow") if knowledge_rows is not None and len(knowledge_rows[0]) else ())
    others = sorted({k.split(".")[0] for k in taken if not k.startswith(special)})
    if others:
        result.parts.append("same-shape tensors: " + ", ".join(others))
    # the linear paths' tables are stored divided by the model's bow_scale
    factor = float(getattr(teacher, "bow_scale", 1.0)) / float(getattr(student, "bow_scale", 1.0))
    for key in ("bow.weight", "know_bow"):
        if key in taken and factor != 1.0:
            taken[key] = taken[key] * factor
    target.update({k: v.to(target[k].dtype) for k, v in taken.items()})
    student.load_state_dict(target)
    return result


def shared_knowledge(student: Any, teacher: Any, d_knowledge: int) -> Dict[str, Any]:
    """How the student's knowledge inputs map onto the teacher's (KnowledgeFeaturizers):
    ids with the same name (type, predicate, rule, flag), and router input columns:
    the id embedding, then the dense features (the KB's graph features only if both
    have them; the link tail always)."""
    if student is None or teacher is None:
        return {}
    names = {teacher.id_name(j): j for j in range(teacher.n_ids)}
    pairs = [(i, names[n]) for i, n in ((i, student.id_name(i)) for i in range(student.n_ids)) if n in names]
    rows = ([i for i, _ in pairs], [j for _, j in pairs])
    tail = student.n_dense - student.n_features
    if student.n_features == teacher.n_features:
        dense = list(range(teacher.n_dense))
    elif student.n_features == 0:
        dense = list(range(teacher.n_features, teacher.n_features + tail))
    else:
        return {"knowledge_rows": rows}
    return {"knowledge_rows": rows, "knowledge_cols": list(range(d_knowledge)) + [d_knowledge + c for c in dense]}


__all__ = ["EncoderHashing", "Transfer", "fold_rows", "init_from_teacher", "shared_knowledge"]
