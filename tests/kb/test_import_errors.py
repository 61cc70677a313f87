"""Bad input: every failure is a coded KBImportError naming the file (and line), and no
KB directory, temporary directory or lock file is left behind."""
from __future__ import annotations

from pathlib import Path

import pytest

from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf


def assert_nothing_written(parent: Path) -> None:
    assert list(parent.iterdir()) == [], f"left behind: {list(parent.iterdir())}"


def test_malformed_turtle_names_file_and_line(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "kb_bad_syntax.ttl"
    with pytest.raises(KBImportError, match=r"SSE-E002") as err:
        import_rdf([src], tmp_path / "kb")
    message = str(err.value)
    assert str(src) in message and "line 5" in message and "turtle" in message
    assert_nothing_written(tmp_path)


def test_malformed_ntriples_in_a_gzip(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "bad.nt.gz"
    src.write_bytes(gzip.compress(b'<http://a> <http://b> "ok" .\n<http://a> <http://b> "unterminated .\n'))
    with pytest.raises(KBImportError, match=r"SSE-E002.*bad\.nt\.gz.*n-triples\), line 2"):
        compile_kb([src])


def test_malformed_file_after_good_one_writes_nothing(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KBImportError, match="kb_bad_syntax.ttl"):
        import_rdf([fixtures_dir / "kb_small.ttl", fixtures_dir / "kb_bad_syntax.ttl"], out / "kb")
    assert_nothing_written(out)


def test_rdflib_engine_reports_the_file_too(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E002.*kb_bad_syntax\.ttl"):
        compile_kb([fixtures_dir / "kb_bad_syntax.ttl"], engine="rdflib")


def test_unknown_extension_lists_accepted_formats(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E001.*'\.txt'.*Accepted formats: turtle \(\.ttl\).*n3"):
        compile_kb([fixtures_dir / "kb_unknown_ext.txt"])


def test_unknown_format_name(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E001.*'hdt'.*json-ld") as err:
        compile_kb([fixtures_dir / "kb_small.ttl"], format="hdt")
    assert "--format" in str(err.value)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E004.*nope\.ttl"):
        import_rdf([tmp_path / "nope.ttl"], tmp_path / "kb")
    assert not (tmp_path / "kb").exists()


def test_directory_without_rdf_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no RDF here")
    with pytest.raises(KBImportError, match=r"SSE-E015"):
        compile_kb([tmp_path])


def test_corrupt_gzip(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E013.*kb_corrupt\.ttl\.gz"):
        compile_kb([fixtures_dir / "kb_corrupt.ttl.gz"])


def test_relative_iris_without_base_suggest_base(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E002.*line 2.*--base"):
        compile_kb([fixtures_dir / "kb_relative.ttl"])


def test_empty_graph(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E005.*kb_empty\.ttl.*empty \(0 triples\)"):
        import_rdf([fixtures_dir / "kb_empty.ttl"], tmp_path / "kb")
    assert_nothing_written(tmp_path)


def test_graph_without_labels(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E006.*kb_no_labels\.nt.*--label-predicate"):
        compile_kb([fixtures_dir / "kb_no_labels.nt"])


def test_labels_in_other_languages_only(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E007.*\['de', 'fr'\].*\['en'\].*--language"):
        compile_kb([fixtures_dir / "kb_french_only.ttl"])
    assert compile_kb([fixtures_dir / "kb_french_only.ttl"], languages=["fr"]).n_entities == 2


def test_labels_on_classes_only(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E017"):
        compile_kb([fixtures_dir / "kb_classes_only.ttl"])


@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
def test_rdfxml_external_entity_is_refused_unread(fixtures_dir: Path, tmp_path: Path, engine: str,
                                                  opened_files: list[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    src = tmp_path / "xxe.rdf"
    src.write_text((fixtures_dir / "kb_xxe.rdf").read_text().replace("/SECRET_PATH", str(secret)))
    out = tmp_path / "out"
    out.mkdir()
    opened_files.clear()  # only what the import opens counts
    with pytest.raises(KBImportError, match=r"SSE-E003.*xxe\.rdf.*DOCTYPE"):
        import_rdf([src], out / "kb", engine=engine)
    assert str(src) in opened_files  # the hook works: the import did read the RDF/XML file
    assert not any("secret" in path for path in opened_files)
    assert_nothing_written(out)


def test_rdfxml_entity_expansion_is_refused(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E003.*kb_entity_bomb\.rdf"):
        compile_kb([fixtures_dir / "kb_entity_bomb.rdf"])
    # also when compressed and when the format is forced on an unknown extension
    import bz2

    hidden = tmp_path / "bomb.data.bz2"
    hidden.write_bytes(bz2.compress((fixtures_dir / "kb_entity_bomb.rdf").read_bytes()))
    with pytest.raises(KBImportError, match=r"SSE-E003"):
        compile_kb([hidden], format="rdf/xml")


def test_bad_engine_option(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E033.*engine"):
        compile_kb([fixtures_dir / "kb_small.ttl"], engine="jena")
    with pytest.raises(KBImportError, match=r"SSE-E033.*graph_engine='igraph'.*fast, networkx"):
        compile_kb([fixtures_dir / "kb_small.ttl"], graph_engine="igraph")


@pytest.mark.parametrize(
    ("name", "content", "fmt", "line"),
    [
        ("bad.jsonld", '{"@id": "http://example.org/a",\n "http://example.org/b": [1,\n}', "json-ld", 3),
        ("bad.rdf", '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                    '<rdf:Description rdf:about="http://example.org/a">\n</rdf:RDF>\n', "rdf/xml", 4),
        ("bad.n3", "@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .\n{ ex:a ex:b }\n", "n3", 3),
        ("bad.nq", '<http://a> <http://b> <http://c> <http://g> .\n<http://a> <http://b> .\n', "n-quads", 2),
        ("bad.trig", "@prefix ex: <http://example.org/> .\nex:g {\n ex:a ex:b ex:c .\n", "trig", 4),
    ],
)
def test_malformed_files_of_every_syntax_name_the_line(tmp_path: Path, name: str, content: str, fmt: str,
                                                       line: int) -> None:
    src = tmp_path / name
    src.write_text(content)
    with pytest.raises(KBImportError, match=rf"SSE-E002.*{name}.*\(format {fmt}\), line {line}:"):
        import_rdf([src], tmp_path / "kb")
    assert not (tmp_path / "kb").exists()
