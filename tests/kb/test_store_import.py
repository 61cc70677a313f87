"""`kb import --store DIR`: the triples also land in an Oxigraph store that pyoxigraph
queries with SPARQL; the KB is the same as without --store; the store is replaced
atomically and only when it is one an earlier --store wrote."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyoxigraph as ox
import pytest
from typer.testing import CliRunner

from spacy_sparse_expert.cli.kb import app
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.kb.oxigraph_store import MARKER_FILE, STORE_FORMAT, store_lock
from tests.kb.test_import import signature

COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
COUNT_ALL = "SELECT (COUNT(*) AS ?n) WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"


def count(store: Path, query: str = COUNT) -> int:
    solutions = list(ox.Store.read_only(str(store)).query(query))
    return int(solutions[0]["n"].value)


def distinct_quads(path: Path) -> set[ox.Quad]:
    return set(ox.parse(path=str(path)))


def kb_files(kb_dir: Path) -> dict[str, bytes]:
    """Every file of a KB folder; meta.json without its timings (they differ per run)."""
    files = {p.name: p.read_bytes() for p in sorted(kb_dir.iterdir()) if p.is_file() and p.name != "meta.json"}
    meta = json.loads((kb_dir / "meta.json").read_text(encoding="utf8"))
    meta.pop("timing")
    files["meta.json"] = json.dumps(meta, sort_keys=True).encode()
    return files


def neighbours(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_cli_store_is_queryable_and_the_kb_is_unchanged(fixtures_dir: Path, tmp_path: Path) -> None:
    source = fixtures_dir / "kb_small.nt"
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["import", str(source), "--output", str(tmp_path / "kb"), "--store", str(store),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    expected = distinct_quads(source)
    assert len(expected) == 55
    assert count(store) == len(expected)
    # the same triples, not only as many: every parsed triple is in the store
    loaded = ox.Store.read_only(str(store))
    assert set(loaded.quads_for_pattern(None, None, None, None)) == expected
    assert bool(loaded.query('ASK { <http://example.org/tony_blair> '
                             '<http://www.w3.org/2000/01/rdf-schema#label> "Tony Blair"@en }'))
    marker = json.loads((store / MARKER_FILE).read_text(encoding="utf8"))
    assert marker["format"] == STORE_FORMAT and marker["quads_loaded"] == 55
    assert oct(store.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    import_rdf([source], tmp_path / "kb_plain")
    assert kb_files(tmp_path / "kb") == kb_files(tmp_path / "kb_plain")
    assert not [n for n in neighbours(store) if n.startswith(".")]  # no temporary or lock files left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_named_graphs_are_kept(fixtures_dir: Path, tmp_path: Path) -> None:
    source = fixtures_dir / "kb_small.nq"
    import_rdf([source], tmp_path / "kb", store=tmp_path / "store")
    quads = distinct_quads(source)
    assert any(q.graph_name != ox.DefaultGraph() for q in quads)  # the fixture has named graphs
    assert count(tmp_path / "store", COUNT_ALL) == len(quads)
    in_default = sum(q.graph_name == ox.DefaultGraph() for q in quads)
    assert count(tmp_path / "store") == in_default


def test_reimport_replaces_an_earlier_store(fixtures_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=store)
    smaller = tmp_path / "smaller.nt"
    lines = (fixtures_dir / "kb_small.nt").read_text(encoding="utf8").splitlines(keepends=True)
    smaller.write_text("".join(lines[:20]), encoding="utf8")
    import_rdf([smaller], tmp_path / "kb", store=store)
    assert count(store) == len(distinct_quads(smaller)) < 55


def test_failed_import_leaves_the_earlier_store(fixtures_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=store)
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file() and p.name != "LOG"}
    with pytest.raises(KBImportError, match="E002"):
        import_rdf([fixtures_dir / "kb_bad_syntax.ttl"], tmp_path / "kb", store=store)
    after = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file() and p.name != "LOG"}
    assert after == before
    assert count(store) == 55
    assert not [n for n in neighbours(store) if n.startswith(".")]


@pytest.mark.parametrize("what", ["foreign_file", "foreign_store", "plain_file"])
def test_refuses_a_directory_it_did_not_write(fixtures_dir: Path, tmp_path: Path, what: str) -> None:
    store = tmp_path / "store"
    if what == "foreign_file":
        store.mkdir()
        (store / "notes.txt").write_text("mine", encoding="utf8")
    elif what == "foreign_store":
        theirs = ox.Store(str(store))
        theirs.add(ox.Quad(ox.NamedNode("http://x/s"), ox.NamedNode("http://x/p"), ox.Literal("o")))
        theirs.flush()
        del theirs
    else:
        store.write_text("not a directory", encoding="utf8")
    listing = sorted(os.listdir(store)) if store.is_dir() else None
    with pytest.raises(KBImportError, match="E280") as err:
        import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=store)
    assert str(store) in str(err.value)
    assert (sorted(os.listdir(store)) if store.is_dir() else None) == listing
    assert not (tmp_path / "kb").exists()  # refused before anything was read or written
    if what == "foreign_store":
        assert count(store) == 1


def test_refuses_overlap_with_the_kb_output_or_a_source(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KBImportError, match="E082"):
        import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=tmp_path / "kb")
    with pytest.raises(KBImportError, match="E082"):
        import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=tmp_path / "kb" / "store")
    source_store = tmp_path / "source_store"
    import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb0", store=source_store)
    with pytest.raises(KBImportError, match="E082"):
        import_rdf([source_store], tmp_path / "kb1", store=source_store)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KBImportError, match="E080"):
        import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb2", store=link)


def test_store_as_a_source_gives_the_same_kb(fixtures_dir: Path, tmp_path: Path) -> None:
    """What --store wrote reads back as a source (kind "store") into the same KB."""
    import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=tmp_path / "store")
    import_rdf([tmp_path / "store"], tmp_path / "kb_from_store")
    # signature() is order-free: a store gives its triples sorted, not in file order
    assert signature(KnowledgeBase.from_disk(tmp_path / "kb_from_store")) == \
        signature(KnowledgeBase.from_disk(tmp_path / "kb"))


def test_a_running_import_into_the_store_is_reported(fixtures_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with store_lock(store), pytest.raises(KBImportError, match="E281"):
        import_rdf([fixtures_dir / "kb_small.nt"], tmp_path / "kb", store=store)
    assert not store.exists()
