"""An import names its steps as they start and end, with counts and seconds (parse,
entities, types, relations, graph features, aliases, write), and `kb import` shows
them instead of a triple count that stalls while the KB is compiled."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf
from spacy_sparse_expert.kb.phases import Phase, PhaseClock

STEPS = ["parse", "entities", "types", "relations", "graph features", "aliases"]


def test_compile_reports_every_step_in_order_with_its_counts(fixtures_dir: Path) -> None:
    seen: list[Phase] = []
    kb = compile_kb([fixtures_dir / "kb_small.ttl"], phase=seen.append)
    starts = [p for p in seen if p.seconds is None]
    ends = [p for p in seen if p.seconds is not None]
    assert [p.name for p in starts] == STEPS and [p.name for p in ends] == STEPS
    # each step ends before the next starts
    assert [p.name for p in seen] == [name for name in STEPS for _ in (0, 1)]
    counts = {p.name: p.counts for p in ends}
    meta = kb.meta["counts"]
    assert counts["parse"]["triples"] == meta["triples"]
    assert counts["entities"]["entities"] == kb.n_entities
    assert counts["types"] == {"types": kb.n_types, "type_links": meta["type_links"]}
    assert counts["relations"] == {"relations": kb.n_relations, "predicates": kb.n_predicates}
    assert counts["graph features"]["features"] == len(kb.feature_names)
    assert counts["aliases"] == {"aliases": kb.n_aliases, "alias_links": meta["alias_links"]}
    assert all(p.seconds >= 0 for p in ends)
    assert list(kb.meta["timing"]["phases"]) == STEPS


def test_import_adds_the_write_step(fixtures_dir: Path, tmp_path: Path) -> None:
    seen: list[Phase] = []
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "kb_small.ttl"], out, phase=seen.append)
    assert [p.name for p in seen if p.seconds is not None] == [*STEPS, "alias index", "entity arrays", "write"]
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert seen[-1].counts == {"bytes": written} and written > 0


def test_the_clock_refuses_an_end_without_a_start() -> None:
    clock = PhaseClock()
    clock.start("parse")
    clock.end(triples=3)
    assert set(clock.seconds) == {"parse"}
    with pytest.raises(RuntimeError, match="without a start"):
        clock.end()


def test_kb_import_prints_a_line_per_step(fixtures_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(tmp_path / "kb")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in [*STEPS, "alias index", "entity arrays", "write"]:
        line = next((line for line in lines if line.startswith(name + " ")), None)
        assert line is not None, (name, result.output)
        assert " s " in line
    assert next(line for line in lines if line.startswith("parse ")).endswith("sources 1")
    assert "relations 8, predicates 5" in result.output  # counts of kb_small.ttl


def test_quiet_import_prints_no_steps(fixtures_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(tmp_path / "kb"),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert "graph features" not in result.output
