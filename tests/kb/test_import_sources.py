"""Sources beyond files (a real SPARQL endpoint on loopback, an Oxigraph store
directory) and the output side: atomic replace and the import lock."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf

from ..loopback import serve_bytes

EX = "http://example.org/"
# The server script sits beside the interpreter when the venv is not activated (as in CI).
OXIGRAPH = shutil.which("oxigraph") or shutil.which("oxigraph", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def oxigraph_endpoint(rdf_file: Path, location: Path) -> Iterator[str]:
    """A real Oxigraph SPARQL server on a free loopback port, loaded with `rdf_file`
    (its database in `location`); yields the query URL."""
    if OXIGRAPH is None:
        pytest.skip("the `oxigraph` server (PyPI package oxigraph) is not installed")
    subprocess.run([OXIGRAPH, "load", "--location", str(location), "--file", str(rdf_file)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen([OXIGRAPH, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/query"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}?query=ASK%7B%7D", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"oxigraph serve did not start: {proc.stderr.read().decode()}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


@pytest.fixture(scope="module")
def sparql_endpoint(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Oxigraph SPARQL server on a free loopback port, loaded with kb_small.ttl."""
    with oxigraph_endpoint(fixtures_dir / "kb_small.ttl", tmp_path_factory.mktemp("oxigraph-server")) as url:
        yield url


def test_sparql_endpoint_import(sparql_endpoint: str, fixtures_dir: Path, tmp_path: Path) -> None:
    from_file = compile_kb([fixtures_dir / "kb_small.ttl"])
    kb = import_rdf([], tmp_path / "kb", sparql=sparql_endpoint)
    assert set(kb.entities) == set(from_file.entities)
    assert kb.n_relations == from_file.n_relations == 8
    assert [c.iri for c in kb.candidates("london")] == [EX + "london", EX + "london_ontario"]
    assert KnowledgeBase.from_disk(tmp_path / "kb").meta["sources"] == [
        {"kind": "sparql", "url": sparql_endpoint, "query": "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"}]


def test_sparql_construct_query_and_credentials_not_stored(sparql_endpoint: str, fixtures_dir: Path,
                                                           tmp_path: Path) -> None:
    query = (fixtures_dir / "kb_construct.rq").read_text()
    with_credentials = sparql_endpoint.replace("http://", "http://reader:s3cret-pw@") + "?token=abc123"
    kb = import_rdf([], tmp_path / "kb", sparql=with_credentials, query=query)
    # the query keeps typed, labelled people only
    assert set(kb.entities) == {EX + "tony_blair", EX + "chelsea_clinton"}
    assert kb.n_relations == 0
    assert set(kb.type_iris_of(kb.entity_id(EX + "tony_blair"))) == {EX + "Politician", EX + "Person"}
    meta_text = (tmp_path / "kb" / "meta.json").read_text()
    assert "s3cret" not in meta_text and "reader" not in meta_text and "abc123" not in meta_text
    assert json.loads(meta_text)["sources"][0]["url"] == sparql_endpoint


def test_sparql_errors_are_clear(sparql_endpoint: str) -> None:
    with pytest.raises(KBImportError, match=r"SSE-E008.*HTTP 400"):
        compile_kb([], sparql=sparql_endpoint, query="CONSTRUCT { this is not sparql }")
    with pytest.raises(KBImportError, match=r"SSE-E008.*not an http"):
        compile_kb([], sparql="ftp://example.org/sparql")
    closed = free_port()  # nothing listens there
    with pytest.raises(KBImportError, match=rf"SSE-E008.*127\.0\.0\.1:{closed}/query.*refused"):
        compile_kb([], sparql=f"http://127.0.0.1:{closed}/query", timeout=2)


def test_sparql_timeout(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        with pytest.raises(KBImportError, match=r"SSE-E101.*no complete answer within 0\.5 s \(timeout"):
            import_rdf([], tmp_path / "kb", sparql=f"http://127.0.0.1:{port}/sparql", timeout=0.5)
        assert time.monotonic() - start < 10
        assert not (tmp_path / "kb").exists()
    finally:
        for conn in accepted:
            conn.close()
        server.close()


def test_oxigraph_store_directory(fixtures_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = ox.Store(str(store_dir))
    store.load(path=str(fixtures_dir / "kb_small.nq"), format=ox.RdfFormat.N_QUADS)
    store.flush()
    del store
    kb = compile_kb([store_dir])
    assert set(kb.entities) == set(compile_kb([fixtures_dir / "kb_small.ttl"]).entities)
    assert kb.n_relations == 8
    assert kb.meta["sources"] == [{"kind": "oxigraph-store", "path": str(store_dir)}]


# --- atomic replace and locking -------------------------------------------------------


def kb_state(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_failed_import_leaves_previous_kb_intact(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "kb_small.ttl"], out)
    before = kb_state(out)
    with pytest.raises(KBImportError):
        import_rdf([fixtures_dir / "kb_bad_syntax.ttl"], out)
    assert kb_state(out) == before
    assert KnowledgeBase.from_disk(out).n_entities == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]  # no temp dir, no lock file


def test_failure_while_writing_leaves_previous_kb_intact(fixtures_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "kb_small.ttl"], out)
    before = kb_state(out)

    def half_written(self: KnowledgeBase, path: Path) -> None:
        (Path(path) / storage.META_FILE).write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(KnowledgeBase, "to_disk", half_written)
    with pytest.raises(OSError, match="No space left"):
        import_rdf([fixtures_dir / "kb_small.nt"], out, languages=["fr"])
    monkeypatch.undo()
    assert kb_state(out) == before
    assert KnowledgeBase.from_disk(out).meta["options"]["languages"] == ["en"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_successful_import_replaces_previous_kb(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "kb_small.ttl"], out)
    import_rdf([fixtures_dir / "kb_small.ttl"], out, languages=["fr"])
    kb = KnowledgeBase.from_disk(out)
    assert EX + "french_only" in kb and EX + "london" not in kb
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]
    assert (out.stat().st_mode & 0o777) != 0o700  # not left with mkdtemp's private mode


def test_refuses_to_replace_a_directory_that_is_not_a_kb(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(KBImportError, match=r"SSE-E081.*precious"):
        import_rdf([fixtures_dir / "kb_small.ttl"], out)
    assert (out / "thesis.tex").read_text() == "do not delete"
    empty = tmp_path / "empty"
    empty.mkdir()
    import_rdf([fixtures_dir / "kb_small.ttl"], empty)  # an empty directory is fine
    assert KnowledgeBase.from_disk(empty).n_entities == 10


def test_concurrent_import_gets_e012(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "kb_small.ttl"], out)
    before = kb_state(out)
    with storage.import_lock(out.absolute()):
        with pytest.raises(KBImportError, match=r"SSE-E012.*\.kb\.lock"):
            import_rdf([fixtures_dir / "kb_small.nt"], out)
        assert kb_state(out) == before
    import_rdf([fixtures_dir / "kb_small.nt"], out)  # the lock is free again


def test_concurrent_import_from_another_process(fixtures_dir: Path, tmp_path: Path) -> None:
    """Two real processes importing into one directory: one wins, the other gets E012,
    and the result is a complete KB."""
    out = tmp_path / "kb"
    code = (
        "import sys, time\n"
        "from spacy_sparse_expert.kb import storage\n"
        "from pathlib import Path\n"
        "with storage.import_lock(Path(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(30)\n"
    )
    import sys

    holder = subprocess.Popen([sys.executable, "-c", code, str(out.absolute())], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(KBImportError, match=r"SSE-E012"):
            import_rdf([fixtures_dir / "kb_small.ttl"], out)
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: flock is released by the kernel, no stale lock
    import_rdf([fixtures_dir / "kb_small.ttl"], out)
    assert KnowledgeBase.from_disk(out).n_entities == 10


def test_sparql_rdfxml_answer_with_doctype_is_refused(fixtures_dir: Path) -> None:
    """An endpoint is untrusted input too: an RDF/XML answer declaring entities is refused."""
    body = (fixtures_dir / "kb_entity_bomb.rdf").read_bytes()
    with serve_bytes(body, "application/rdf+xml") as (url, _):
        with pytest.raises(KBImportError, match=rf"SSE-E003.*{url}"):
            compile_kb([], sparql=url, timeout=5)
