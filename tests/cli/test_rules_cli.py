from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_sparse_expert.cli.rules import app

runner = CliRunner()


def test_check_good_file(fixtures_dir: Path) -> None:
    result = runner.invoke(app, ["check", str(fixtures_dir / "rules_good.jsonl")])
    assert result.exit_code == 0, result.output
    assert "6 valid rules" in result.output and "3 phrase" in result.output


def test_check_bad_file_lists_lines(fixtures_dir: Path) -> None:
    result = runner.invoke(app, ["check", str(fixtures_dir / "rules_bad.jsonl")], terminal_width=200)
    assert result.exit_code == 1
    for line, field in [(2, "-"), (4, "lables"), (9, "pattern[0].LOWER"), (12, "weight")]:
        assert any(f"│ {line:>4} │ {field}" in row for row in result.output.splitlines()), (line, field)
    assert "on 13 line(s)" in result.output


def test_check_json(fixtures_dir: Path) -> None:
    result = runner.invoke(app, ["check", str(fixtures_dir / "rules_bad.jsonl"), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False
    assert (9, "pattern[0].LOWER") in {(p["line"], p["field"]) for p in data["problems"]}
    result = runner.invoke(app, ["check", str(fixtures_dir / "rules_good.jsonl"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True and data["rules"] == 6 and data["kinds"]["kb_type"] == 1


def test_check_with_kb_and_labels(fixtures_dir: Path, tmp_path: Path) -> None:
    from spacy_sparse_expert.kb.compile import import_rdf

    kb_dir = tmp_path / "kb"
    import_rdf([fixtures_dir / "rules_kb.ttl"], kb_dir)
    good, bad = fixtures_dir / "rules_good.jsonl", fixtures_dir / "rules_bad.jsonl"
    result = runner.invoke(app, ["check", str(good), "--kb", str(kb_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", str(bad), "--kb", str(kb_dir), "--json"])
    fields = {(p["line"], p["field"]) for p in json.loads(result.output)["problems"]}
    assert {(15, "kb_type"), (16, "kb_relation")} <= fields
    result = runner.invoke(app, ["check", str(good), "--labels", "sport,politics", "--json"])
    assert result.exit_code == 1
    assert [(p["line"], p["field"]) for p in json.loads(result.output)["problems"]] == [(8, "labels.tech")]


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_check_missing_file_and_bad_kb(tmp_path: Path, fixtures_dir: Path, extra: list[str]) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.jsonl"), *extra])
    assert result.exit_code == 1 and "SSE-E021" in result.output
    result = runner.invoke(app, ["check", str(fixtures_dir / "rules_good.jsonl"), "--kb", str(tmp_path), *extra])
    assert result.exit_code == 1 and "SSE-E009" in result.output
