"""`sparse-expert distill` through typer's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app

from .conftest import student_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")


def test_distill_command(tmp_path: Path, teacher_dir: Path, data_dir: Path) -> None:
    config = tmp_path / "student.cfg"
    student_config(epochs=1).to_disk(config)
    out, report = tmp_path / "student", tmp_path / "report.json"
    result = runner.invoke(app, ["distill", str(teacher_dir), "--output", str(out), "--config", str(config),
                                 "--train", str(data_dir / "train.spacy"), "--dev", str(data_dir / "train.spacy"),
                                 "--unlabelled", str(data_dir / "texts.jsonl"), "--report", str(report),
                                 "--quiet", "--distill.prune.finetune_epochs", "0"])
    assert result.exit_code == 0, result.output
    assert "teacher" in result.output and "student" in result.output and "macro-F1" in result.output
    data = json.loads(report.read_text(encoding="utf8"))
    assert data["student"]["params"] < data["teacher"]["params"]
    assert [row["phase"] for row in data["history"]] == ["train"]  # the override took effect
    assert spacy.load(out)("Labour won the vote").cats


def test_distill_command_reports_a_bad_teacher(tmp_path: Path, data_dir: Path) -> None:
    result = runner.invoke(app, ["distill", str(tmp_path / "missing"), "--output", str(tmp_path / "s"),
                                 "--train", str(data_dir / "train.spacy"), "--quiet"])
    assert result.exit_code == 1
    assert "SSE-E050" in result.output and "no such directory" in result.output
