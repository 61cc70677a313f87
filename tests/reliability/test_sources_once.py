"""Every RDF source is read exactly once, so a pipe imports like the file it carries.

A family of documents (six syntaxes, plain or gzip, with and without a UTF-8 BOM, sizes
around the 4 KiB and 64 KiB read boundaries) goes through every kind of one-shot stream:
an anonymous pipe as `/dev/fd/N` (process substitution), `/dev/stdin`, `-` (standard
input) and a named FIFO. Each import must give the same entities, the same triple count
and the sha256 and size of the bytes sent as the import of the same bytes from a regular
file. A second open of a FIFO would block forever, so a watchdog opens its write end
after a while: a regression then fails (empty graph) instead of hanging.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import compile_kb

from .conftest import assert_clean_failure, run_cli

EX = "http://example.org/"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
BOM = b"\xef\xbb\xbf"
FORMATS = {  # name -> (pyoxigraph format, file extension)
    "turtle": (ox.RdfFormat.TURTLE, ".ttl"), "n-triples": (ox.RdfFormat.N_TRIPLES, ".nt"),
    "n-quads": (ox.RdfFormat.N_QUADS, ".nq"), "trig": (ox.RdfFormat.TRIG, ".trig"),
    "json-ld": (ox.RdfFormat.JSON_LD, ".jsonld"), "rdf/xml": (ox.RdfFormat.RDF_XML, ".rdf"),
}
SIZES = (4095, 4096, 4097, 65537)  # bytes of the document as stored, BOM included
TRANSPORTS = ("fd", "stdin-path", "dash", "fifo")


def graph(n_entities: int) -> list[ox.Triple]:
    """Entities with labels, types and links: every table of the KB gets rows."""
    triples = []
    for i in range(n_entities):
        node = ox.NamedNode(f"{EX}e{i}")
        triples.append(ox.Triple(node, ox.NamedNode(LABEL), ox.Literal(f"Entity number {i}", language="en")))
        triples.append(ox.Triple(node, ox.NamedNode(RDF_TYPE), ox.NamedNode(f"{EX}Class{i % 3}")))
        if i:
            triples.append(ox.Triple(node, ox.NamedNode(f"{EX}linksTo"), ox.NamedNode(f"{EX}e{i - 1}")))
    return triples


def document(fmt: str, size: int, bom: bool) -> bytes:
    """A serialisation padded with trailing whitespace (valid in every syntax) to `size`."""
    body = b""
    n = 40
    while True:
        body = ox.serialize(graph(n), format=FORMATS[fmt][0])
        if len(body) + len(BOM) * bom <= size:
            break
        n = n * 3 // 4
    data = (BOM if bom else b"") + body
    return data + b"\n" * (size - len(data))


def gzip_fixed(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@contextlib.contextmanager
def one_shot(transport: str, payload: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A source name whose bytes can be read once only, fed by a writer thread."""
    if transport == "fifo":
        fifo = tmp_path / "feed"
        os.mkfifo(fifo)

        def write_fifo() -> None:
            with open(fifo, "wb") as fh:  # blocks until the import opens the FIFO
                fh.write(payload)

        def release() -> None:  # a second open would wait for a writer forever
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

        writer = threading.Thread(target=write_fifo, daemon=True)
        writer.start()
        watchdog = threading.Timer(20, release)
        watchdog.start()
        try:
            yield str(fifo)
        finally:
            watchdog.cancel()
            release()  # unblocks the writer when the import failed before opening
            writer.join(10)
        return
    read_end, write_end = os.pipe()

    def write_pipe() -> None:
        with open(write_end, "wb") as fh:
            with contextlib.suppress(BrokenPipeError):
                fh.write(payload)

    writer = threading.Thread(target=write_pipe, daemon=True)
    saved_stdin = os.dup(0)
    try:
        if transport == "fd":
            writer.start()
            yield f"/dev/fd/{read_end}"
        else:
            os.dup2(read_end, 0)
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(open(0, "rb", closefd=False)))
            writer.start()
            yield "/dev/stdin" if transport == "stdin-path" else "-"
    finally:
        os.dup2(saved_stdin, 0)
        os.close(saved_stdin)
        os.close(read_end)
        writer.join(10)


def summary(kb) -> tuple:  # noqa: ANN001 - a KnowledgeBase
    source = kb.meta["sources"][0]
    return (kb.meta["counts"], kb.entities, kb.aliases, source["sha256"], source["bytes"])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("size", SIZES)
def test_one_shot_streams_import_like_the_file(fmt: str, size: int, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for bom in (False, True):
        plain = document(fmt, size, bom)
        for compressed in (False, True):
            payload = gzip_fixed(plain) if compressed else plain
            regular = tmp_path / f"doc{FORMATS[fmt][1]}{'.gz' if compressed else ''}"
            regular.write_bytes(payload)
            expected = summary(compile_kb([regular]))
            assert expected[3] == hashlib.sha256(payload).hexdigest() and expected[4] == len(payload)
            assert expected[0]["entities"] > 0
            for transport in TRANSPORTS:
                case = tmp_path / f"{transport}-{bom}-{compressed}"
                case.mkdir()
                with one_shot(transport, payload, case, monkeypatch) as name:
                    got = summary(compile_kb([name], format=fmt))
                assert got == expected, (transport, bom, compressed)


@pytest.mark.parametrize("suffix,compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_compression_of_a_pipe_is_recognised(suffix: str, compress, tmp_path: Path,  # noqa: ANN001
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    payload = compress(document("n-triples", 5000, False))
    regular = tmp_path / f"doc.nt{suffix}"
    regular.write_bytes(payload)
    expected = summary(compile_kb([regular]))
    for transport in TRANSPORTS:
        case = tmp_path / transport
        case.mkdir()
        with one_shot(transport, payload, case, monkeypatch) as name:
            kb = compile_kb([name], format="nt")
        assert summary(kb) == expected
        assert kb.meta["sources"][0]["compression"] == suffix


@pytest.mark.parametrize("name", ["kb_small.ttl", "kb_small.ttl.gz", "kb_small.nt.bz2", "kb_small.rdf",
                                  "kb_small.jsonld", "kb_small.n3"])
@pytest.mark.parametrize("engine", ["oxigraph", "rdflib"])
def test_a_regular_file_is_opened_once(name: str, engine: str, fixtures_dir: Path,
                                       opened_files: list[str]) -> None:
    src = fixtures_dir / name
    kb = compile_kb([src], engine=engine)
    assert opened_files.count(str(src)) == 1, opened_files
    assert kb.meta["sources"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_standard_input_twice_is_refused(fixtures_dir: Path) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E096.*more than once"):
        compile_kb(["-", fixtures_dir / "kb_small.ttl", "-"], format="turtle")


def test_a_pipe_without_format_names_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with one_shot("fd", b"", tmp_path, monkeypatch) as name:
        result = run_cli("kb", "import", name, "-o", tmp_path / "kb")
    assert_clean_failure(result, "E001", name, "--format")
    assert not (tmp_path / "kb").exists()


def test_dash_reads_standard_input_through_the_cli(tmp_path: Path, fixtures_dir: Path) -> None:
    src = fixtures_dir / "kb_small.ttl.gz"
    result = CliRunner().invoke(app, ["kb", "import", "-", "-f", "ttl", "-q", "-o", str(tmp_path / "kb")],
                                input=src.read_bytes(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "kb" / "meta.json").read_text())
    assert meta["sources"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["counts"] == compile_kb([src]).meta["counts"]


@pytest.mark.slow
def test_shell_pipes_through_the_cli(tmp_path: Path, fixtures_dir: Path) -> None:
    """The real thing: a shell pipe into `-` and `/dev/stdin`, and bash process
    substitution, each importing what the regular file gives (same sha256)."""
    src = fixtures_dir / "kb_small.ttl"
    cli = Path(sys.executable).parent / "sparse-expert"
    script = (f'set -e; cat "{src}" | "{cli}" kb import - -f ttl -q -o "{tmp_path}/a"; '
              f'gzip -c "{src}" | "{cli}" kb import /dev/stdin -f ttl -q -o "{tmp_path}/b"; '
              f'"{cli}" kb import <(gzip -c "{src}") -f ttl -q -o "{tmp_path}/c"; '
              f'"{cli}" kb import "{src}" -q -o "{tmp_path}/d"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metas = {d: json.loads((tmp_path / d / "meta.json").read_text()) for d in "abcd"}
    assert {m["counts"]["entities"] for m in metas.values()} == {metas["d"]["counts"]["entities"]}
    assert metas["a"]["sources"][0]["sha256"] == metas["d"]["sources"][0]["sha256"]
    zipped = {metas[d]["sources"][0]["sha256"] for d in "bc"}
    assert len(zipped) == 1 and metas["b"]["sources"][0]["compression"] == ".gz"
