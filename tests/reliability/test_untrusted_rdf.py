"""RDF that tries to make the importer read files, reach the network or exhaust memory:
XML external entities and entity-expansion bombs in any encoding the XML may declare,
and JSON-LD @context references. All are refused before a parser runs; an audit hook and
a loopback server show that nothing was opened or fetched."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf

from ..loopback import serve_bytes
from .conftest import assert_clean_failure, run_cli

RDF_BODY = ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
            '<rdf:Description rdf:about="http://example.org/leak"><rdfs:label>&e;</rdfs:label></rdf:Description>\n'
            '</rdf:RDF>\n')
XXE = '<!DOCTYPE rdf:RDF [<!ENTITY e SYSTEM "file://{secret}">]>\n'
BOMB = ('<!DOCTYPE rdf:RDF [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY e "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>\n')
PARAMETER = '<!DOCTYPE rdf:RDF [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>\n'


def encoded(text: str, encoding: str) -> bytes:
    """The document in `encoding`, declared as an XML parser expects it."""
    if encoding == "cp037":  # EBCDIC: an ASCII declaration, then the rest in EBCDIC
        return b'<?xml version="1.0" encoding="cp037"?>\n' + text.encode("cp037")
    declaration = f'<?xml version="1.0" encoding="{encoding.replace("-sig", "")}"?>\n'
    return (declaration + text).encode(encoding)


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp037"]


@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("attack", ["external entity", "parameter entity", "expansion bomb"])
def test_entity_declarations_refused_in_any_encoding(tmp_path: Path, opened_files: list[str], attack: str,
                                                     encoding: str, engine: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    dtd = {"external entity": XXE, "parameter entity": PARAMETER, "expansion bomb": BOMB}[attack]
    src = tmp_path / "attack.rdf"
    src.write_bytes(encoded(dtd.format(secret=secret) + RDF_BODY, encoding))
    opened_files.clear()
    with pytest.raises(KBImportError, match=r"SSE-E003.*attack\.rdf.*DOCTYPE"):
        import_rdf([src], tmp_path / "kb", engine=engine)
    assert str(src) in opened_files and str(secret) not in opened_files
    assert not (tmp_path / "kb").exists()


def test_doctype_after_a_megabyte_of_comment(tmp_path: Path) -> None:
    """The scan reads in 1 MiB chunks; a declaration across a chunk border is found."""
    for shift in range(-12, 4, 3):
        src = tmp_path / f"late{shift}.rdf"
        head = '<?xml version="1.0"?>\n<!--'
        padding = "x" * ((1 << 20) - len(head) - 3 + shift)
        src.write_text(head + padding + "-->" + BOMB + RDF_BODY)
        with pytest.raises(KBImportError, match=r"SSE-E003"):
            compile_kb([src])


def test_an_encoding_that_cannot_be_checked_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "odd.rdf"
    src.write_bytes(b'<?xml version="1.0" encoding="x-mac-klingon"?>\n' + BOMB.encode() + RDF_BODY.encode())
    result = run_cli("kb", "import", src, "-o", tmp_path / "kb", "-q")
    assert_clean_failure(result, "E064", "odd.rdf", "x-mac-klingon", "Convert the file to UTF-8")


@pytest.fixture()
def context_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that serves a JSON-LD context and records every request."""
    body = b'{"@context": {"label": "http://www.w3.org/2000/01/rdf-schema#label"}}'
    with serve_bytes(body, "application/ld+json", "/context.jsonld") as served:
        yield served


@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
@pytest.mark.parametrize("where", ["top", "list", "nested", "import"])
def test_jsonld_context_is_never_fetched(tmp_path: Path, context_server: tuple[str, list[str]],
                                         opened_files: list[str], where: str, engine: str) -> None:
    url, requests = context_server
    local = tmp_path / "context.jsonld"
    local.write_text('{"@context": {"label": "http://www.w3.org/2000/01/rdf-schema#label"}}')
    ref = {"top": f'"{url}"', "list": f'[{{"x": "http://x/"}}, "{local.as_uri()}"]',
           "nested": f'{{"label": {{"@id": "http://www.w3.org/2000/01/rdf-schema#label", "@context": "{url}"}}}}',
           "import": f'{{"@import": "{url}"}}'}[where]
    src = tmp_path / "doc.jsonld"
    src.write_text(f'{{"@context": {ref}, "@id": "http://example.org/a", "label": "A"}}')
    opened_files.clear()
    with pytest.raises(KBImportError, match=r"SSE-E061.*doc\.jsonld") as err:
        compile_kb([src], engine=engine)
    assert "inline" in str(err.value) or "fetched" in str(err.value)
    assert requests == [] and str(local) not in opened_files


def test_sparql_answer_in_utf16_with_doctype_is_refused(tmp_path: Path) -> None:
    body = encoded(BOMB + RDF_BODY, "utf-16")
    with serve_bytes(body, "application/rdf+xml") as (url, _):
        result = run_cli("kb", "import", "--sparql", url, "-o", tmp_path / "kb", "--timeout", "10", "-q")
    assert_clean_failure(result, "E003", url)
