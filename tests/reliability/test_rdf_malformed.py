"""Malformed RDF, one hand-made file per fault (tests/fixtures/malformed/) plus generated
extremes: each gives a coded KBImportError naming the file (and the line, where the
parser knows it) or a correct KB, through the API with both parsers and through the CLI
without a traceback."""
from __future__ import annotations

import gzip
import tracemalloc
import warnings
from pathlib import Path

import pytest

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import compile_kb

from .conftest import MALFORMED, assert_clean_failure, error_code, run_cli

EX = "http://example.org/"
LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
SUBCLASS = "<http://www.w3.org/2000/01/rdf-schema#subClassOf>"
TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"

# file -> (error code, or None for a KB; line pyoxigraph reports, or None)
EXPECTED: dict[str, tuple[str | None, int | None]] = {
    "truncated.ttl": ("E002", 5),
    "truncated_literal.ttl": ("E002", 4),
    "truncated.jsonld": ("E002", 3),
    "truncated.rdf": ("E002", 6),            # pyoxigraph alone would import the part before the cut
    "truncated.n3": ("E002", 3),
    "truncated.trig": ("E002", 5),
    "bad_iri_space.nt": ("E002", 2),
    "bad_iri_host.ttl": ("E002", 3),
    "bad_iri_chars.nt": ("E002", 1),
    "unterminated_literal.nt": ("E002", 2),
    "lone_surrogate.nt": ("E002", 1),
    "codepoint_too_big.nt": ("E002", 1),
    "bad_language_tag.ttl": ("E002", 3),
    "literal_subject.ttl": ("E002", 3),
    "invalid_utf8.ttl": ("E002", 4),
    "latin1_literal.nt": ("E002", 1),
    "invalid_utf8.rdf": ("E002", 3),
    "binary_garbage.ttl": ("E002", 1),
    "gzip_with_nt_extension.nt": ("E002", 1),
    "empty.nt": ("E005", None),
    "whitespace_only.ttl": ("E005", None),
    "comments_only.ttl": ("E005", None),
    "not_an_object.jsonld": ("E005", None),
    "blank_nodes_only.ttl": ("E060", None),
    "blank_node_property_list.ttl": ("E060", None),
    "remote_context.jsonld": ("E061", None),
    "file_context.jsonld": ("E061", None),
    "doctype_utf16.rdf": ("E003", None),
    "doctype_ebcdic.rdf": ("E003", None),
    "unknown_encoding.rdf": ("E064", None),
    "bom.ttl": (None, None),
    "duplicate_labels.ttl": (None, None),
    "nul_in_literal.nt": (None, None),
    "subclass_cycle.ttl": (None, None),
    "subclass_self_loop.ttl": (None, None),
}


def test_the_corpus_is_complete() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in MALFORMED.iterdir() if p.name != "README.md")


def check_kb(name: str, kb: KnowledgeBase) -> None:
    """What the files that import must give."""
    if name == "duplicate_labels.ttl":  # one alias, two entities, each pair counted once
        assert kb.n_entities == 2 and kb.aliases == ["same"]
        assert sorted(c.iri for c in kb.candidates("SAME")) == [EX + "a", EX + "b"]
        assert sum(c.prior for c in kb.candidates("same")) == pytest.approx(1.0)
    elif name == "bom.ttl":
        assert kb.entities == [EX + "a"] and kb.labels == ["With BOM"]
    elif name == "nul_in_literal.nt":
        assert kb.labels == ["A\x00B"]
    elif name == "subclass_cycle.ttl":  # every member of a cycle is a superclass of the others
        assert set(kb.type_iris_of(0)) == {EX + c for c in ("A", "B", "C", "Top")}
        assert kb.type_iris_of(0, direct_only=True) == [EX + "A"]
    elif name == "subclass_self_loop.ttl":
        assert kb.type_iris_of(0) == [EX + "A"]


@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file(name: str, engine: str, tmp_path: Path) -> None:
    code, line = EXPECTED[name]
    src = MALFORMED / name
    if code is None:
        check_kb(name, compile_kb([src], engine=engine))
        return
    with pytest.raises(KBImportError) as err:
        compile_kb([src], engine=engine)
    message = str(err.value)
    assert error_code(message) == code
    assert str(src) in message
    if line is not None and (engine == "oxigraph" or name.endswith((".rdf", ".n3", ".trig"))):
        assert f"line {line}:" in message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_through_the_cli(name: str, tmp_path: Path) -> None:
    code, line = EXPECTED[name]
    src = MALFORMED / name
    result = run_cli("kb", "import", src, "--output", tmp_path / "kb", "--quiet")
    if code is None:
        assert result.exit_code == 0, result.output
        assert KnowledgeBase.from_disk(tmp_path / "kb").n_entities >= 1
        return
    assert_clean_failure(result, code, str(src), *([f"line {line}:"] if line else []))
    assert list(tmp_path.iterdir()) == []  # no KB, no temporary directory, no lock file


# --- generated extremes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    depth = 10_000
    (root / "deep_brackets.ttl").write_text(f"<{EX}a> <{EX}p> " + "[" * depth + "]" * depth + " .\n")
    (root / "deep_collection.ttl").write_text(
        f'<{EX}a> {LABEL} "A" ; <{EX}p> ' + "(" * depth + ")" * depth + " .\n")
    (root / "deep_nesting.jsonld").write_text("[" * 100_000 + "]" * 100_000)  # beyond pyoxigraph's 65,536
    (root / "deep_subclass.nt").write_text(
        "".join(f"<{EX}c{i}> {SUBCLASS} <{EX}c{i + 1}> .\n" for i in range(depth))
        + f'<{EX}x> {TYPE} <{EX}c0> .\n<{EX}x> {LABEL} "X" .\n')
    (root / "huge_literal.nt").write_text(
        f'<{EX}long> {LABEL} "{"x" * 5_000_000}" .\n<{EX}words> {LABEL} "{"word " * 200_000}" .\n')
    (root / "many_aliases.nt").write_text(
        "".join(f'<{EX}one> {LABEL} "alias number {i}" .\n' for i in range(100_000)))
    (root / "shared_label.nt").write_text(
        "".join(f'<{EX}e{i}> {LABEL} "Springfield" .\n' for i in range(20_000)))
    nt = "".join(f'<{EX}e{i}> {LABEL} "E {i}" .\n' for i in range(2000)).encode()
    (root / "truncated.nt.gz").write_bytes(gzip.compress(nt, mtime=0)[:2000])
    return root


def test_deep_nesting_is_refused_not_a_crash(generated: Path) -> None:
    for name in ("deep_brackets.ttl", "deep_nesting.jsonld"):
        for engine in ("oxigraph", "rdflib"):
            with pytest.raises(KBImportError, match=rf"SSE-E002.*{name}"):
                compile_kb([generated / name], engine=engine)
    # pyoxigraph reads 10,000 nested collections; rdflib's recursive parser cannot
    kb = compile_kb([generated / "deep_collection.ttl"])
    assert kb.entities == [EX + "a"]
    with pytest.raises(KBImportError, match=r"SSE-E002.*deep_collection\.ttl.*recursion"):
        compile_kb([generated / "deep_collection.ttl"], engine="rdflib")


def test_deep_subclass_chain_in_bounded_memory(generated: Path) -> None:
    """10,000 levels: the closure of the one class used is 10,000 types. Building it for
    every class (the old way) held 50 million set entries, gigabytes."""
    tracemalloc.start()
    try:
        kb = compile_kb([generated / "deep_subclass.nt"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kb.n_types == 10_001
    assert len(kb.types_of(kb.entity_id(EX + "x"))) == 10_001
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_huge_literals(generated: Path) -> None:
    kb = compile_kb([generated / "huge_literal.nt"])
    assert kb.n_entities == 2
    assert kb.candidates("x" * 5_000_000)[0].iri == EX + "long"
    assert kb.candidates("word " * 200_000)[0].iri == EX + "words"  # whitespace normalised


def test_100k_aliases_for_one_entity(generated: Path) -> None:
    kb = compile_kb([generated / "many_aliases.nt"])
    assert kb.n_entities == 1 and kb.n_aliases == 100_000
    for i in (0, 49_999, 99_999):
        assert [c.iri for c in kb.candidates(f"Alias Number {i}")] == [EX + "one"]
        assert kb.candidates(f"alias number {i}")[0].prior == 1.0


def test_one_label_shared_by_20k_entities(generated: Path) -> None:
    with pytest.warns(UserWarning, match=r"SSE-W001.*springfield.*20000 entities"):
        kb = compile_kb([generated / "shared_label.nt"])
    assert kb.n_entities == 20_000 and kb.n_aliases == 1
    candidates = kb.candidates("Springfield")
    assert len(candidates) == 30 and sum(c.prior for c in candidates) == pytest.approx(1.0)


def test_truncated_gzip(generated: Path, tmp_path: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E0(02|13).*truncated\.nt\.gz"):
        compile_kb([generated / "truncated.nt.gz"])
    result = run_cli("kb", "import", generated / "truncated.nt.gz", "-o", tmp_path / "kb", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_generated_extremes_through_the_cli(generated: Path, tmp_path: Path) -> None:
    result = run_cli("kb", "import", generated / "deep_brackets.ttl", "-o", tmp_path / "kb", "-q")
    assert_clean_failure(result, "E002", "deep_brackets.ttl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_cli("kb", "import", generated / "deep_subclass.nt", "-o", tmp_path / "kb", "-q")
    assert result.exit_code == 0, result.output
    assert KnowledgeBase.from_disk(tmp_path / "kb").n_types == 10_001


def test_bad_file_among_good_ones_names_the_bad_one(fixtures_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "a.ttl").write_bytes((fixtures_dir / "kb_small.ttl").read_bytes())
    (folder / "b.nt").write_bytes((MALFORMED / "unterminated_literal.nt").read_bytes())
    result = run_cli("kb", "import", folder, "-o", tmp_path / "kb", "-q")
    assert_clean_failure(result, "E002", str(folder / "b.nt"), "line 2:")
    assert not (tmp_path / "kb").exists()
