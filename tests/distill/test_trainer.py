"""distill/trainer.py end to end on tiny pipelines: the loss falls, pruning removes the
chosen experts and neurons and shrinks the saved student, which loads, predicts and
works with `spacy evaluate`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spacy
from safetensors.numpy import load_file

from spacy_sparse_expert.distill import distill
from spacy_sparse_expert.distill.evaluate import macro_f1
from spacy_sparse_expert.distill.pipelines import dir_bytes

from .conftest import LABELS, TRAIN, student_config, train_teacher

PRUNE = {"n_experts": 3, "ffn_keep": 0.5, "encoder_keep": 0.5}


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path, data_dir: Path):
    out = tmp_path_factory.mktemp("student") / "student"
    result = distill(teacher_dir, out, config=student_config(router_weight=0.1, student_kb=True, prune=PRUNE),
                     train=data_dir / "train.spacy", dev=data_dir / "train.spacy", progress=False, passes=1)
    return result


def test_student_loss_falls(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    result = distill(teacher_dir, tmp_path / "s", config=student_config(init_from_teacher=False, epochs=6),
                     train=data_dir / "train.spacy", progress=False, measure=False)
    losses = [row["loss"] for row in result.history if row["phase"] == "train"]
    assert len(losses) == 6
    assert losses[-1] < 0.5 * losses[0]
    assert all(row["kl"] >= 0 for row in result.history)


def test_pruning_removes_chosen_experts_and_neurons(distilled) -> None:
    p = distilled.pruning
    assert len(p.experts) == 3 and p.d_ff == [16, 8] and p.d_hidden == [16, 8]
    assert p.params[1] < p.params[0]
    nlp = spacy.load(distilled.output)
    model_cfg = nlp.config["components"]["textcat"]["model"]
    assert (model_cfg["n_experts"], model_cfg["d_ff"], model_cfg["encoder"]["d_hidden"]) == (3, 8, 8)
    weights = load_file(str(distilled.output / "textcat" / "model"))
    assert weights["moe.0.experts.w_in"].shape == (3, 16, 8)
    assert weights["moe.0.router.gate.weight"].shape == (3, 16)
    assert weights["encoder.blocks.0.up.weight"].shape == (8, 16)
    assert not any("mask" in key or "orig" in key for key in weights)
    # the student's experts came from the teacher, ranked by the teacher's routing
    assert distilled.teacher_experts is not None and len(distilled.teacher_experts) == 3
    assert any(part.startswith("moe") for part in distilled.transfer)


def test_pruned_student_is_smaller_on_disk(distilled, tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    unpruned = distill(teacher_dir, tmp_path / "unpruned",
                       config=student_config(epochs=1, prune={"ffn_keep": 1.0, "encoder_keep": 1.0,
                                                              "finetune_epochs": 0}),
                       train=data_dir / "train.spacy", progress=False, measure=False)
    assert unpruned.pruning.params[0] == unpruned.pruning.params[1]
    model = lambda path: (path / "textcat" / "model").stat().st_size  # noqa: E731
    assert model(distilled.output) < model(unpruned.output) < model(teacher_dir)
    assert dir_bytes(distilled.output) < dir_bytes(teacher_dir)
    assert distilled.student.disk_bytes == dir_bytes(distilled.output)


def test_student_loads_and_predicts(distilled, data_dir: Path) -> None:
    nlp = spacy.load(distilled.output)
    texts = [text for text, _ in TRAIN]
    docs = list(nlp.pipe(texts))
    assert all(set(doc.cats) == set(LABELS) for doc in docs)
    assert all(sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5) for doc in docs)
    single = nlp(texts[0]).cats
    assert single == pytest.approx(docs[0].cats, abs=1e-5)
    # the KB and rules travelled with the student: it links without any RDF
    assert nlp.get_pipe("textcat").kb is not None and nlp.get_pipe("textcat").rules is not None
    assert nlp(texts[0])._.kb_entities
    # the report measured both
    assert distilled.student.params < distilled.teacher.params
    assert distilled.student.words_per_second > 0 and 0.0 <= distilled.student.macro_f1 <= 1.0


def test_spacy_evaluate_works_on_the_student(distilled, data_dir: Path) -> None:
    from spacy.cli.evaluate import evaluate

    scores = evaluate(distilled.output, data_dir / "train.spacy", silent=True)
    assert "cats_macro_f" in scores and 0.0 <= scores["cats_macro_f"] <= 1.0


def test_router_matching_is_trained(distilled) -> None:
    assert all(row["router"] > 0 for row in distilled.history)


def test_student_with_knowledge_keeps_the_rules_but_not_the_kb(tmp_path: Path, teacher_dir: Path,
                                                               data_dir: Path) -> None:
    result = distill(teacher_dir, tmp_path / "s", config=student_config(epochs=1),
                     train=data_dir / "train.spacy", progress=False, measure=False)
    pipe = spacy.load(result.output).get_pipe("textcat")
    assert pipe.kb is None and pipe.rules is not None and len(pipe.rules) == 3
    assert any(part.startswith("knowledge ids") for part in result.transfer)
    assert any(part.startswith("moe") for part in result.transfer)  # router knowledge columns mapped


def test_shipped_student_has_no_knowledge_inputs(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    result = distill(teacher_dir, tmp_path / "s", config=student_config(knowledge=False, epochs=1),
                     train=data_dir / "train.spacy", progress=False, measure=False)
    nlp = spacy.load(result.output)
    pipe = nlp.get_pipe("textcat")
    assert pipe.kb is None and pipe.rules is None
    assert not (result.output / "textcat" / "kb").exists() and not (result.output / "textcat" / "rules").exists()
    assert set(nlp("Chelsea beat Arsenal").cats) == set(LABELS)


def test_crops_labelled_by_the_teacher(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    result = distill(teacher_dir, tmp_path / "s", config=student_config(epochs=1, augment_crops=2),
                     train=data_dir / "train.spacy", progress=False, measure=False)
    assert result.documents == {"train": len(TRAIN), "crops": 2 * len(TRAIN), "dev": 0}


def test_unlabelled_documents_use_the_teacher_only(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    result = distill(teacher_dir, tmp_path / "s", config=student_config(epochs=2),
                     unlabelled=data_dir / "texts.jsonl", progress=False, measure=False)
    assert all(row["ce"] == 0.0 for row in result.history)
    assert spacy.load(tmp_path / "s")("Chelsea won").cats


def test_multilabel_teacher(tmp_path: Path, kb_dir: Path, data_dir: Path) -> None:
    teacher = train_teacher(tmp_path / "teacher", kb_dir, exclusive=False, steps=4)
    cfg = student_config(epochs=2)
    cfg["components"]["textcat"]["factory"] = "sparse_expert_textcat_multilabel"
    cfg["components"]["textcat"]["threshold"] = 0.5
    cfg["components"]["textcat"]["model"]["exclusive_classes"] = False
    cfg["components"]["textcat"]["scorer"] = {"@scorers": "spacy-sparse-expert.textcat_multilabel_scorer.v1"}
    result = distill(teacher, tmp_path / "s", config=cfg, train=data_dir / "train.spacy",
                     dev=data_dir / "train.spacy", progress=False, passes=1)
    cats = spacy.load(tmp_path / "s")("Chelsea won").cats
    assert set(cats) == set(LABELS) and sum(cats.values()) != pytest.approx(1.0)
    assert result.student.macro_f1 is not None


def test_macro_f1() -> None:
    gold = np.eye(3)[[0, 1, 2, 2]]
    assert macro_f1(gold, gold, exclusive=True) == 1.0
    pred = np.eye(3)[[0, 1, 2, 1]]
    assert macro_f1(pred, gold, exclusive=True) == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))


def test_int8_dynamic_quantisation(distilled, tmp_path: Path) -> None:
    from spacy_sparse_expert.distill.quantize import quantize_pipeline

    nlp = spacy.load(distilled.output)
    texts = [text for text, _ in TRAIN]
    before = [doc.cats for doc in nlp.pipe(texts)]
    names = quantize_pipeline(nlp)
    assert "output" in names and "encoder.blocks.0.up" in names
    after = [doc.cats for doc in nlp.pipe(texts)]
    for a, b in zip(before, after):
        assert max(abs(a[label] - b[label]) for label in LABELS) < 0.05
    with pytest.raises(ValueError, match="SSE-E079"):
        nlp.to_disk(tmp_path / "quantised")
