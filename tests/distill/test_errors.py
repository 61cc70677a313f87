"""Clear errors: a corrupt, missing or incompatible teacher (E050, E071), bad settings
and data (E072-E078)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import spacy

from spacy_sparse_expert.distill import distill, load_student_config
from spacy_sparse_expert.distill.config import DistillSettings, student_config_text

from .conftest import make_docbin, student_config

REPO = Path(__file__).resolve().parent.parent.parent


def run(teacher: Path, out: Path, data_dir: Path, **kwargs):
    kwargs.setdefault("config", student_config(epochs=1))
    kwargs.setdefault("train", data_dir / "train.spacy")
    return distill(teacher, out, progress=False, measure=False, **kwargs)


def test_missing_teacher(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"SSE-E050.*no such directory"):
        run(tmp_path / "nope", tmp_path / "s", data_dir)


def test_teacher_that_is_not_a_pipeline(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(ValueError, match=r"SSE-E050.*not a saved spaCy pipeline"):
        run(tmp_path / "t", tmp_path / "s", data_dir)


def test_corrupt_teacher_weights(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    broken = tmp_path / "teacher"
    shutil.copytree(teacher_dir, broken)
    (broken / "textcat" / "model").write_bytes(b"\x80\x04not safetensors at all")
    with pytest.raises(ValueError, match=r"SSE-E050.*spacy.load failed"):
        run(broken, tmp_path / "s", data_dir)


def test_truncated_teacher_config(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    broken = tmp_path / "teacher"
    shutil.copytree(teacher_dir, broken)
    text = (broken / "config.cfg").read_text(encoding="utf8")
    (broken / "config.cfg").write_text(text[: len(text) // 2], encoding="utf8")
    with pytest.raises(ValueError, match=r"SSE-E050"):
        run(broken, tmp_path / "s", data_dir)


def test_teacher_without_the_component(tmp_path: Path, data_dir: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "t")
    with pytest.raises(ValueError, match=r"SSE-E050.*no sparse_expert_textcat.*sentencizer"):
        run(tmp_path / "t", tmp_path / "s", data_dir)


def test_student_of_another_kind(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    cfg = student_config()
    cfg["components"]["textcat"]["factory"] = "sparse_expert_textcat_multilabel"
    with pytest.raises(ValueError, match=r"SSE-E071.*sparse_expert_textcat_multilabel"):
        run(teacher_dir, tmp_path / "s", data_dir, config=cfg)


def test_student_config_without_the_component(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    cfg = student_config()
    cfg["nlp"]["pipeline"] = []
    with pytest.raises(ValueError, match=r"SSE-E070"):
        run(teacher_dir, tmp_path / "s", data_dir, config=cfg)


@pytest.mark.parametrize("key,value,match", [("alpha", 1.5, "alpha=1.5"), ("temperature", 0, "temperature=0"),
                                             ("epochs", 0, "epochs=0"), ("learn_rat", 0.1, "unknown key")])
def test_bad_settings(key: str, value: object, match: str) -> None:
    cfg = load_student_config(None)
    cfg["distill"][key] = value
    with pytest.raises(ValueError, match=rf"SSE-E072.*{match}"):
        DistillSettings.from_config(cfg)


def test_no_training_data(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"SSE-E073"):
        run(teacher_dir, tmp_path / "s", data_dir, train=None)


def test_bad_unlabelled_line(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "fine"}\n{"txt": "oops"}\n', encoding="utf8")
    with pytest.raises(ValueError, match=r"SSE-E074.*line 2"):
        run(teacher_dir, tmp_path / "s", data_dir, train=None, unlabelled=path)


def test_labels_the_teacher_does_not_know(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    train = make_docbin(spacy.blank("en"), tmp_path / "t.spacy", [("A phone", "tech")], labels=["tech", "sport"])
    with pytest.raises(ValueError, match=r"SSE-E075.*'tech'"):
        run(teacher_dir, tmp_path / "s", data_dir, train=train)


def test_router_matching_needs_teacher_experts(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"SSE-E076"):
        run(teacher_dir, tmp_path / "s", data_dir, config=student_config(router_weight=0.5, init_from_teacher=False))
    cfg = student_config(router_weight=0.5)
    cfg["components"]["textcat"]["model"]["encoder"]["width"] = 24  # the teacher's experts are width 16
    with pytest.raises(ValueError, match=r"SSE-E076.*do not fit"):
        run(teacher_dir, tmp_path / "s", data_dir, config=cfg)


def test_pruning_that_keeps_nothing(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"SSE-E077"):
        run(teacher_dir, tmp_path / "s", data_dir, config=student_config(epochs=1, prune={"min_expert_share": 0.99}))


def test_output_that_is_another_folder(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf8")
    with pytest.raises(ValueError, match=r"SSE-E085"):
        run(teacher_dir, out, data_dir)
    assert (out / "notes.txt").read_text(encoding="utf8") == "keep me"


def test_shipped_config_is_the_built_in_default() -> None:
    # configs/distill.cfg is the package's student.cfg (a link), not a copy kept in step
    shipped = REPO / "configs" / "distill.cfg"
    assert shipped.resolve() == (REPO / "spacy_sparse_expert" / "distill" / "student.cfg").resolve()
    assert load_student_config(shipped) == load_student_config(None)
    assert shipped.read_text(encoding="utf8") == student_config_text()
