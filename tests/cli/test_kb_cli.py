"""`sparse-expert kb import / info / lookup` through typer's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.cli.kb import expand_iri
from spacy_sparse_expert.cli.main import app

EX = "http://example.org/"
runner = CliRunner()


@pytest.fixture(scope="module")
def kb_dir(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "kb"
    result = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_import_prints_a_summary(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    result = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.nt.bz2"),
                                 str(fixtures_dir / "kb_dir"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Knowledge base written to" in result.output
    assert "entities" in result.output and "triples/s" in result.output
    assert KnowledgeBase.from_disk(out).n_entities == 10


def test_import_options(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    result = runner.invoke(app, [
        "kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(out), "--quiet",
        "--language", "fr", "--language", "en", "--label-predicate", "rdfs:label",
        "--label-predicate", "<http://xmlns.com/foaf/0.1/name>", "--relation", "ex-not-a-prefix:x",
        "--relation", f"{EX}locatedIn", "--max-candidates", "5",
    ])
    assert result.exit_code == 0, result.output
    assert "Knowledge base written" not in result.output  # --quiet
    kb = KnowledgeBase.from_disk(out)
    assert kb.meta["options"]["label_predicates"] == ["http://www.w3.org/2000/01/rdf-schema#label",
                                                      "http://xmlns.com/foaf/0.1/name"]
    assert kb.meta["options"]["languages"] == ["fr", "en"]
    assert kb.predicates == [EX + "locatedIn"]
    assert EX + "french_only" in kb and EX + "london" not in kb  # London has only skos:prefLabel


def test_expand_iri() -> None:
    assert expand_iri("skos:altLabel") == "http://www.w3.org/2004/02/skos/core#altLabel"
    assert expand_iri("<urn:x:y>") == "urn:x:y"
    assert expand_iri("http://example.org/p") == "http://example.org/p"


def test_import_errors_exit_1_with_the_coded_message(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    result = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_bad_syntax.ttl"), "-o", str(out)])
    assert result.exit_code == 1
    assert "SSE-E002" in result.output and "line 5" in result.output
    assert not out.exists()
    result = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(out), "--format", "x"])
    assert result.exit_code == 1 and "SSE-E001" in result.output and "turtle" in result.output
    result = runner.invoke(app, ["kb", "import", "-o", str(out)])
    assert result.exit_code == 1 and "SSE-E004" in result.output
    result = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_french_only.ttl"), "-o", str(out)])
    assert result.exit_code == 1 and "SSE-E007" in result.output


def test_import_from_sparql_with_query_file(fixtures_dir: Path, tmp_path: Path) -> None:
    """The endpoint fixture lives in tests/kb; here the query file path and the error
    path of --sparql are checked without a server."""
    result = runner.invoke(app, ["kb", "import", "-o", str(tmp_path / "kb"), "--sparql", "http://127.0.0.1:9/q",
                                 "--query", str(fixtures_dir / "kb_construct.rq"), "--timeout", "2"])
    assert result.exit_code == 1 and "SSE-E008" in result.output
    result = runner.invoke(app, ["kb", "import", "-o", str(tmp_path / "kb"), "--sparql", "http://127.0.0.1:9/q",
                                 "--query", str(tmp_path / "missing.rq")])
    assert result.exit_code == 1 and "missing.rq" in result.output


def test_info(kb_dir: Path) -> None:
    result = runner.invoke(app, ["kb", "info", str(kb_dir)])
    assert result.exit_code == 0, result.output
    assert "entities" in result.output and "kb_small.ttl" in result.output and "pagerank" in result.output
    result = runner.invoke(app, ["kb", "info", str(kb_dir), "--json"])
    meta = json.loads(result.output)
    assert meta["counts"]["entities"] == 10 and meta["format_version"] == 2


def test_info_on_a_non_kb(tmp_path: Path) -> None:
    result = runner.invoke(app, ["kb", "info", str(tmp_path)])
    assert result.exit_code == 1 and "SSE-E009" in result.output


def test_lookup(kb_dir: Path) -> None:
    result = runner.invoke(app, ["kb", "lookup", str(kb_dir), "London", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    first, second = data["candidates"]
    assert first["iri"] == EX + "london" and first["label"] == "London"
    assert first["types"] == [EX + "Capital"] and set(first["all_types"]) == {EX + "Capital", EX + "City", EX + "Place"}
    assert first["prior"] > second["prior"] and first["prior"] + second["prior"] == pytest.approx(1.0, abs=1e-5)
    assert set(first["graph_features"]) == {"in_degree", "out_degree", "degree", "pagerank", "core_number"}
    table = runner.invoke(app, ["kb", "lookup", str(kb_dir), "tony blair"])
    assert table.exit_code == 0 and "Tony Blair" in table.output and "Politician" in table.output
    by_iri = json.loads(runner.invoke(app, ["kb", "lookup", str(kb_dir), EX + "uk", "--json"]).output)
    assert by_iri["candidates"][0]["label"] == "United Kingdom"
    none = runner.invoke(app, ["kb", "lookup", str(kb_dir), "Atlantis"])
    assert none.exit_code == 0 and "No entity has the alias 'Atlantis'" in none.output
    assert json.loads(runner.invoke(app, ["kb", "lookup", str(kb_dir), "Atlantis", "--json"]).output)["candidates"] == []
