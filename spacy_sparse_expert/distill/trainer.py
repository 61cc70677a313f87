"""The distillation trainer: teacher pipeline -> soft labels -> student pipeline.

    from spacy_sparse_expert.distill import distill
    result = distill("teacher/model-best", "student", config="configs/distill.cfg",
                     train="train.spacy", dev="dev.spacy", unlabelled="texts.jsonl")

Steps: load and check the teacher; build the student pipeline from its config with
the teacher's labels, KB and rules; one teacher pass over the training documents
(soft labels, router logits, expert usage); seed the student with the teacher's
weights where shapes allow; train the student's torch module directly with AdamW on
``distill_loss`` (plus the MoE auxiliary losses and, optionally, router matching),
keeping the best epoch on dev; prune (experts, expert neurons, encoder neurons),
rebuild the pipeline with the smaller shapes and fine-tune (a phase goes back to the
weights it started from where those beat its best epoch on dev by more than
``start_margin``); save with
``nlp.to_disk``; measure teacher and student the same way.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import spacy
import torch
from thinc.api import Config

from ..errors import Errors
from ..ml.architectures import torch_module
from ..ml.torch.classifier import MoEDocClassifier
from ..ml.torch.losses import weighted_aux_loss
from ..ml.torch.pruning import n_parameters
from .config import DistillSettings, load_student_config
from .data import Features, GoldArrays, TeacherView, crop_pairs, gold_arrays, read_docbin, read_unlabelled, teacher_view
from .evaluate import ModelStats, macro_f1, model_stats
from .loss import distill_loss, router_kl
from .pipelines import (check_output, check_student_fits, create_student, distill_inputs, examples_for,
                        find_component, initialize_student, load_teacher, pruned_config, rebuild_student, remap_rules,
                        save_pipeline)
from .prune import PruneReport, prune_module, rank_experts
from .transfer import EncoderHashing, Transfer, init_from_teacher, shared_knowledge


@dataclass
class DistillResult:
    """output: the student pipeline; teacher / student: the report numbers; history:
    one dict per epoch; transfer: what the student took from the teacher."""

    output: Path
    teacher: Optional[ModelStats]
    student: Optional[ModelStats]
    history: List[Dict[str, Any]] = field(default_factory=list)
    transfer: List[str] = field(default_factory=list)
    teacher_experts: Optional[List[int]] = None
    pruning: Optional[PruneReport] = None
    documents: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "output": str(self.output),
            "teacher": self.teacher.to_dict() if self.teacher else None,
            "student": self.student.to_dict() if self.student else None,
            "history": self.history,
            "transfer": self.transfer,
            "teacher_experts": self.teacher_experts,
            "pruning": None if self.pruning is None else vars(self.pruning),
            "documents": self.documents,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Targets:
    """Per training document: teacher logits (n, L), gold, and teacher router logits."""

    logits: np.ndarray
    gold: GoldArrays
    router: Optional[List[np.ndarray]]


class _Progress:
    """rich progress bars (on stderr), or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                console=Console(stderr=True))

    def __enter__(self) -> "_Progress":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def task(self, description: str, total: int) -> Any:
        return None if self.bar is None else self.bar.add_task(description, total=total, info="")

    def advance(self, task: Any, info: str = "") -> None:
        if self.bar is not None and task is not None:
            self.bar.update(task, advance=1, info=info)

    def log(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)


def predict_scores(module: MoEDocClassifier, features: Features, batch_size: int = 64) -> np.ndarray:
    """(n_docs, n_labels) probabilities of ``module`` (eval mode): softmax of its logits
    for exclusive labels, else sigmoid."""
    was_training = module.training
    module.eval()
    out = []
    with torch.inference_mode():
        for _, inputs in features.batches(batch_size):
            logits = module(**inputs).logits.float()
            out.append((logits.softmax(-1) if module.exclusive else logits.sigmoid()).cpu().numpy())
    module.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, module.n_labels), dtype=np.float32)


def fit(module: MoEDocClassifier, features: Features, targets: Targets, settings: DistillSettings, *,
        epochs: int, exclusive: bool, aux_weights: Sequence[float], phase: str = "train",
        dev: Optional[tuple] = None, teacher_experts: Optional[Sequence[int]] = None,
        max_seconds: Optional[float] = None, progress: Optional[_Progress] = None) -> List[Dict[str, Any]]:
    """Train ``module`` in place on ``distill_loss`` for ``epochs`` (AdamW, linear decay,
    gradient clipping). With ``dev = (features, GoldArrays)`` the best epoch on dev is
    kept, or the starting weights where they beat it by more than
    ``settings.start_margin``: the fine-tuning after pruning restarts the learning rate,
    and an epoch of it can undo more than it mends. RETURNS one dict per epoch (losses,
    dev macro-F1, seconds); the first also holds ``dev_macro_f1_start``, and the row
    whose weights were kept has ``kept: True`` (no such row: the starting weights)."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learn_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-len(features) // settings.batch_size)
    total = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total))
    rng = np.random.default_rng(settings.seed + (0 if phase == "train" else 1))
    use_router = settings.router_weight > 0 and targets.router is not None and len(module.moe) > 0
    history: List[Dict[str, Any]] = []
    best_f1, best_state, best_row = -1.0, None, None
    start_f1, start_state = -1.0, None
    if dev is not None:
        start_f1, start_state = _dev_f1(module, dev, exclusive), copy.deepcopy(module.state_dict())
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            module.train()
            task = progress.task(f"{phase} epoch {epoch + 1}/{epochs}", steps_per_epoch) if progress else None
            sums = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "router": 0.0}
            n_batches = 0
            for index, inputs in features.batches(settings.batch_size, rng.permutation(len(features))):
                out = module(**inputs)
                g = targets.gold
                # in fp64, as the teacher's logits are kept
                parts = distill_loss(out.logits.double(), torch.from_numpy(targets.logits[index]),
                                     torch.from_numpy(g.gold[index]), torch.from_numpy(g.not_missing[index]),
                                     torch.from_numpy(g.has_gold[index]), alpha=settings.alpha,
                                     temperature=settings.temperature, exclusive=exclusive)
                loss = parts.total + weighted_aux_loss(out.aux_losses, aux_weights)
                router_value = 0.0
                if use_router:
                    t_router = torch.from_numpy(np.concatenate([targets.router[i] for i in index]))
                    r = router_kl(out.router_logits[0], t_router, teacher_experts) * settings.router_weight
                    loss = loss + r
                    router_value = float(r.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                optimizer.step()
                schedule.step()
                n_batches += 1
                sums["loss"] += float(parts.total.detach()) + router_value
                sums["ce"] += float(parts.ce.detach())
                sums["kl"] += float(parts.kl.detach())
                sums["router"] += router_value
                if progress:
                    progress.advance(task, f"loss {sums['loss'] / n_batches:.4f}")
                if max_seconds is not None and time.perf_counter() - start > max_seconds:
                    break
            row = {"phase": phase, "epoch": epoch + 1, **{k: v / max(n_batches, 1) for k, v in sums.items()},
                   "seconds": round(time.perf_counter() - start, 1)}
            if dev is not None:
                row["dev_macro_f1"] = _dev_f1(module, dev, exclusive)
                if not history:
                    row["dev_macro_f1_start"] = start_f1
                if row["dev_macro_f1"] > best_f1:
                    best_f1, best_state, best_row = row["dev_macro_f1"], copy.deepcopy(module.state_dict()), row
            history.append(row)
            if progress:
                progress.log(f"{phase} epoch {epoch + 1}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds"))
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
    finally:
        optimizer.zero_grad(set_to_none=True)
    if start_state is not None and (best_row is None or start_f1 > best_f1 + settings.start_margin):
        module.load_state_dict(start_state)
        if progress and history:
            progress.log(f"{phase}: the starting weights beat the best epoch on dev by more than "
                         f"{settings.start_margin} ({start_f1:.4f} against {best_f1:.4f}); kept them")
    elif best_state is not None and best_row is not None:
        module.load_state_dict(best_state)
        best_row["kept"] = True
    module.eval()
    return history


def _dev_f1(module: MoEDocClassifier, dev: tuple, exclusive: bool) -> float:
    dev_features, dev_gold = dev
    return macro_f1(predict_scores(module, dev_features), dev_gold.gold, exclusive=exclusive,
                    not_missing=dev_gold.not_missing)


def distill(
    teacher: Union[str, Path],
    output: Union[str, Path],
    *,
    config: Union[None, str, Path, Config] = None,
    train: Optional[Union[str, Path]] = None,
    dev: Optional[Union[str, Path]] = None,
    unlabelled: Optional[Union[str, Path]] = None,
    overrides: Optional[Dict[str, Any]] = None,
    progress: bool = True,
    measure: bool = True,
    passes: int = 3,
) -> DistillResult:
    """Distil the trained pipeline ``teacher`` into a student pipeline saved at ``output``.

    config: the student's config (path, Config, or None for the built-in one of
        configs/distill.cfg); overrides: dotted config overrides ({"distill.alpha": 0.7}).
    train: ``.spacy`` documents with gold cats; unlabelled: JSONL ``{"text": ...}`` lines
        (teacher labels only); at least one of them. dev: ``.spacy`` documents for model
        selection and the report's macro-F1.
    measure: measure teacher and student (params, disk, words/s, macro-F1) at the end.
    RETURNS (DistillResult): the report.
    """
    start = time.perf_counter()
    source = "<built-in student config>" if config is None else str(config) if not isinstance(config, Config) \
        else "<student config>"
    cfg = config if isinstance(config, Config) else load_student_config(config, overrides)
    settings = DistillSettings.from_config(cfg)
    if settings.router_weight > 0 and not settings.init_from_teacher:
        raise ValueError(Errors.E076.format(weight=settings.router_weight, reason="init_from_teacher is false"))
    if train is None and unlabelled is None:
        raise ValueError(Errors.E073.format(reason="neither --train nor --unlabelled was given"))
    inputs = distill_inputs(teacher, config, train, dev, unlabelled)
    check_output(output, inputs)  # fail fast: before loading or training anything
    t_nlp, t_name = load_teacher(teacher)
    t_pipe = t_nlp.get_pipe(t_name)
    t_module = torch_module(t_pipe.model)
    spacy.util.fix_random_seed(settings.seed)
    s_nlp, s_name = create_student(cfg, source=source)
    check_student_fits(t_pipe, cfg, s_name, teacher, source)
    exclusive, labels = bool(t_pipe.cfg["exclusive"]), list(t_pipe.labels)

    t_docs, s_docs = [], []
    if train is not None:
        t_docs += read_docbin(train, t_nlp)
        s_docs += read_docbin(train, s_nlp)
    if unlabelled is not None:
        texts = read_unlabelled(unlabelled)
        t_docs += [t_nlp.make_doc(text) for text in texts]
        s_docs += [s_nlp.make_doc(text) for text in texts]
    if not s_docs:
        raise ValueError(Errors.E073.format(reason=f"{train} holds no documents"))
    n_docs = len(s_docs)
    if settings.augment_crops:
        t_crops, s_crops = crop_pairs(t_docs, s_docs, settings.augment_crops, seed=settings.seed)
        t_docs, s_docs = t_docs + t_crops, s_docs + s_crops
    gold = gold_arrays(s_docs, labels, exclusive=exclusive, source=str(train))
    dev_docs = read_docbin(dev, s_nlp) if dev is not None else []
    dev_gold = gold_arrays(dev_docs, labels, exclusive=exclusive, source=str(dev)) if dev_docs else None

    use_router = settings.router_weight > 0
    if use_router and any(len(a) != len(b) for a, b in zip(t_docs, s_docs)):
        raise ValueError(Errors.E076.format(weight=settings.router_weight,
                                            reason="the two pipelines tokenize the unlabelled texts differently"))
    with _Progress(progress) as bar:
        bar.log(f"teacher {teacher}: {n_parameters(t_module):,} parameters; {n_docs} training docs"
                + (f" + {len(s_docs) - n_docs} crops" if len(s_docs) > n_docs else ""))
        view: TeacherView = teacher_view(t_pipe.model, t_docs, with_router=use_router,
                                         with_importance=settings.init_from_teacher)
        # shapes come from the built models (their validated settings), never from
        # config dicts with defaults restated
        n_student = int(s_nlp.get_pipe(s_name).model.attrs["n_experts"])
        ranked = None
        if settings.init_from_teacher and view.importance is not None and n_student <= t_module.n_experts:
            ranked = rank_experts(view.importance, n_student)
        examples = examples_for(s_nlp, s_docs[:n_docs])  # the n-gram idf of whole documents
        kb = t_pipe.kb if settings.student_kb else None
        rules = t_pipe.rules if settings.student_rules else None
        initialize_student(s_nlp, s_name, labels=labels, examples=examples, kb=kb, rules=rules, rule_experts=ranked)
        s_pipe = s_nlp.get_pipe(s_name)
        s_module = torch_module(s_pipe.model)
        transfer = Transfer()
        if settings.init_from_teacher:
            s_attrs, t_attrs = s_pipe.model.attrs, t_pipe.model.attrs
            transfer = init_from_teacher(
                s_module, t_module, teacher_experts=ranked, importance=view.importance,
                expert_policy=settings.expert_policy,
                student_hashing=EncoderHashing.of(s_attrs["token_featurizer"]),
                teacher_hashing=EncoderHashing.of(t_attrs["token_featurizer"]),
                row_counts=view.row_counts,
                same_ngrams=s_attrs["ngram_size"] == t_attrs["ngram_size"],
                **shared_knowledge(s_pipe.featurizer, t_pipe.featurizer, s_module.knowledge_bag.embedding_dim))
            bar.log("student initialised from the teacher: " + ("; ".join(transfer.parts) or "nothing fitted"))
        if ranked is not None and transfer.teacher_experts is None:
            # the experts did not come from the teacher: rules keep their own expert ids
            s_pipe.set_knowledge(kb, remap_rules(rules, None, n_student))
        if use_router and transfer.teacher_experts is None:
            raise ValueError(Errors.E076.format(weight=settings.router_weight,
                                                reason="the teacher's experts do not fit the student's shapes"))
        targets = Targets(view.logits, gold, view.router_logits)
        features = Features(s_pipe.model, s_docs)
        dev_pair = (Features(s_pipe.model, dev_docs), dev_gold) if dev_gold is not None else None
        aux = (s_pipe.cfg["load_balancing_weight"], s_pipe.cfg["z_loss_weight"])
        teacher_experts = transfer.teacher_experts
        history = fit(s_module, features, targets, settings, epochs=settings.epochs, exclusive=exclusive,
                      aux_weights=aux, dev=dev_pair, teacher_experts=teacher_experts,
                      max_seconds=settings.max_seconds, progress=bar)

        report = prune_module(s_module, (inputs for _, inputs in features.batches(64)), settings.prune,
                              expert_policy=settings.expert_policy)
        bar.log(f"pruned: experts kept {report.experts} (shares {report.expert_share}), expert d_ff "
                f"{report.d_ff[0]} -> {report.d_ff[1]}, encoder d_hidden {report.d_hidden[0]} -> "
                f"{report.d_hidden[1]}, parameters {report.params[0]:,} -> {report.params[1]:,}")
        cfg = pruned_config(cfg, s_name, s_module)
        s_nlp = rebuild_student(s_nlp, s_name, cfg, experts=report.experts, examples=examples,
                                state=s_module.state_dict())
        s_pipe = s_nlp.get_pipe(s_name)
        s_module = torch_module(s_pipe.model)
        if teacher_experts is not None:
            teacher_experts = [teacher_experts[e] for e in report.experts]
        if settings.prune.finetune_epochs:
            features = features.rebind(s_pipe.model, report.experts)
            if dev_pair is not None:
                dev_pair = (dev_pair[0].rebind(s_pipe.model, report.experts), dev_pair[1])
            history += fit(s_module, features, targets, settings, epochs=settings.prune.finetune_epochs,
                           exclusive=exclusive, aux_weights=aux, phase="finetune", dev=dev_pair,
                           teacher_experts=teacher_experts, progress=bar)
        s_nlp.meta.setdefault("description", f"Distilled from {Path(teacher).name} by spacy-sparse-expert")
        out_path = save_pipeline(s_nlp, output, inputs)

    result = DistillResult(out_path, None, None, history, transfer.parts, teacher_experts, report,
                           {"train": n_docs, "crops": len(s_docs) - n_docs, "dev": len(dev_docs)})
    if measure:
        saved = spacy.load(out_path)
        texts = [doc.text for doc in dev_docs] if dev_docs else [doc.text for doc in s_docs[:500]]
        gold_eval = dev_gold.gold if dev_gold is not None else None
        result.teacher = model_stats(t_nlp, t_name, texts, gold=gold_eval, path=teacher, passes=passes)
        result.student = model_stats(saved, find_component(saved) or s_name, texts, gold=gold_eval, path=out_path,
                                     passes=passes)
    result.seconds = time.perf_counter() - start
    return result


__all__ = ["DistillResult", "PruneReport", "distill", "fit", "predict_scores"]
