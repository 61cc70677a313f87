"""SPARQL sources that fail: HTTP errors, timeouts, cut-off, malformed and mislabelled
answers, redirects, invalid URLs. Each gives a coded error naming the endpoint (never its
credentials) and the CLI prints it without a traceback; credentials and API keys in the
URL appear nowhere: not in meta.json, the CLI output or the logs, not even when the
server echoes them back, and they are not forwarded to a host a redirect points to."""
from __future__ import annotations

import base64
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spacy_sparse_expert import KnowledgeBase

from ..kb.test_import_sources import sparql_endpoint  # noqa: F401 - the real `oxigraph serve` fixture
from .conftest import assert_clean_failure, run_cli

NT = b'<http://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
SECRETS = ("s3cret-pw", "k3y-123", base64.b64encode(b"reader:s3cret-pw").decode())


class FaultyEndpoint(http.server.BaseHTTPRequestHandler):
    """Answers according to the first path segment; records what it was sent."""

    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        FaultyEndpoint.seen.append({"port": self.server.server_address[1], "path": self.path,
                                    "authorization": self.headers.get("Authorization")})
        mode = self.path.strip("/").split("?")[0]
        getattr(self, f"answer_{mode.replace('-', '_')}")()

    def reply(self, status: int, media: str, body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def answer_ok(self) -> None:
        self.reply(200, "application/n-triples", NT)

    def answer_error_500(self) -> None:  # echoes the request, credentials included
        echo = f"failed for {self.path} with {self.headers.get('Authorization')}".encode()
        self.reply(500, "text/plain", echo)

    def answer_error_503_html(self) -> None:
        self.reply(503, "text/html", b"<html><body>maintenance</body></html>")

    def answer_slow_headers(self) -> None:
        time.sleep(3)
        self.answer_ok()

    def answer_stall_mid_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/n-triples")
        self.send_header("Content-Length", str(len(NT) * 2))
        self.end_headers()
        self.wfile.write(NT)
        self.wfile.flush()
        time.sleep(3)

    def answer_cut_off(self) -> None:
        self.reply(200, "application/n-triples", NT, length=10 * len(NT))

    def answer_bad_status_line(self) -> None:
        self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")

    def answer_hang_up(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def answer_select_results(self) -> None:
        self.reply(200, "application/sparql-results+json", b'{"head": {"vars": []}, "results": {"bindings": []}}')

    def answer_bad_ntriples(self) -> None:
        self.reply(200, "application/n-triples", NT + b'<http://example.org/b> <http://p> "unterminated .\n')

    def answer_bad_turtle(self) -> None:
        self.reply(200, "text/turtle", b"@prefix ex: <http://example.org/> .\nex:a ex:b [ ex:c \n")

    def answer_truncated_rdfxml(self) -> None:
        self.reply(200, "application/rdf+xml", b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf='
                   b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n<rdf:Description rdf:about="http://x/a">\n')

    def answer_empty(self) -> None:
        self.reply(200, "application/n-triples", b"")

    def answer_redirect(self) -> None:
        self.send_response(302)
        other = self.server.other_port  # type: ignore[attr-defined]
        self.send_header("Location", f"http://127.0.0.1:{other}/ok?k3y-123")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FaultyEndpoint)
    server.daemon_threads = True
    server.block_on_close = False  # sleeping handlers must not hold up the tests
    server.handle_error = lambda *args: None  # type: ignore[method-assign] # a client gone at its timeout
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[int, int]]:
    main, other = serve(), serve()
    main.other_port = other.server_address[1]  # type: ignore[attr-defined]
    try:
        yield main.server_address[1], other.server_address[1]
    finally:
        for server in (main, other):
            server.shutdown()
            server.server_close()


def url(port: int, mode: str) -> str:
    return f"http://reader:s3cret-pw@127.0.0.1:{port}/{mode}?apikey=k3y-123"


# mode -> (code, words the message must hold)
FAULTS = {
    "error-500": ("E008", "HTTP 500"),
    "error-503-html": ("E008", "HTTP 503"),
    "slow-headers": ("E101", "no complete answer within 0.5 s"),
    "stall-mid-body": ("E101", "no complete answer within 0.5 s"),
    "cut-off": ("E008", "cut off"),
    "bad-status-line": ("E008", "not a valid HTTP answer"),
    "hang-up": ("E008", "not a valid HTTP answer"),
    "select-results": ("E008", "unexpected response type 'application/sparql-results+json'"),
    "bad-ntriples": ("E002", "line 2"),
    "bad-turtle": ("E002", "line 3"),
    "truncated-rdfxml": ("E002", "not well-formed XML"),
    "empty": ("E005", "empty (0 triples)"),
    "redirect": ("E008", "HTTP 302 redirect to http://127.0.0.1:"),
}


@pytest.mark.parametrize("mode", sorted(FAULTS))
def test_faulty_endpoint(mode: str, endpoints: tuple[int, int], tmp_path: Path,
                         caplog: pytest.LogCaptureFixture) -> None:
    port, other = endpoints
    code, words = FAULTS[mode]
    FaultyEndpoint.seen.clear()
    with caplog.at_level(logging.DEBUG):
        result = run_cli("kb", "import", "--sparql", url(port, mode), "-o", tmp_path / "kb", "--timeout", "0.5", "-q")
    output = assert_clean_failure(result, code, f"http://127.0.0.1:{port}/{mode}", words)
    for secret in SECRETS:
        assert secret not in output and secret not in caplog.text
    assert not (tmp_path / "kb").exists()
    assert [s["port"] for s in FaultyEndpoint.seen] == [port]  # a redirect is not followed


def test_credentials_reach_the_server_and_no_further(endpoints: tuple[int, int], tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    port, _ = endpoints
    FaultyEndpoint.seen.clear()
    with caplog.at_level(logging.DEBUG):
        result = run_cli("kb", "import", "--sparql", url(port, "ok"), "-o", tmp_path / "kb")
    assert result.exit_code == 0, result.output
    assert FaultyEndpoint.seen[0]["authorization"] == f"Basic {SECRETS[2]}"
    meta = (tmp_path / "kb" / "meta.json").read_text()
    for secret in SECRETS + ("reader",):
        assert secret not in meta and secret not in result.output and secret not in caplog.text
    assert json.loads(meta)["sources"][0]["url"] == f"http://127.0.0.1:{port}/ok"


@pytest.mark.parametrize(("bad", "words"), [
    ("http://reader:s3cret-pw@127.0.0.1:notaport/q", "invalid URL"),
    ("http://reader:s3cret-pw@127.0.0.1:99999/q", "invalid URL"),
    ("http://reader:s3cret-pw@[::1/q", "invalid URL"),
    ("http://:s3cret-pw@/q", "not an http(s) URL with a host"),
    ("ftp://reader:s3cret-pw@example.org/sparql", "not an http(s) URL"),
    ("file:///etc/passwd", "not an http(s) URL"),
])
def test_invalid_urls(bad: str, words: str, tmp_path: Path) -> None:
    output = assert_clean_failure(run_cli("kb", "import", "--sparql", bad, "-o", tmp_path / "kb"), "E008", words)
    assert "s3cret-pw" not in output


def test_real_oxigraph_with_credentials_and_a_select_query(sparql_endpoint: str, tmp_path: Path,  # noqa: F811
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The real server: a CONSTRUCT through credentials and an API key works and stores
    neither; a SELECT query (results, not a graph) is a clear error."""
    secret_url = sparql_endpoint.replace("http://", "http://reader:s3cret-pw@") + "?apikey=k3y-123"
    with caplog.at_level(logging.DEBUG):
        result = run_cli("kb", "import", "--sparql", secret_url, "-o", tmp_path / "kb")
    assert result.exit_code == 0, result.output
    assert KnowledgeBase.from_disk(tmp_path / "kb").n_entities == 10
    text = (tmp_path / "kb" / "meta.json").read_text() + result.output + caplog.text
    assert not any(secret in text for secret in SECRETS)
    query = tmp_path / "select.rq"
    query.write_text("SELECT ?s WHERE { ?s ?p ?o }")
    result = run_cli("kb", "import", "--sparql", secret_url, "--query", query, "-o", tmp_path / "kb2")
    output = assert_clean_failure(result, "E008", sparql_endpoint, "HTTP 406", "is the query a CONSTRUCT query?")
    assert "s3cret-pw" not in output and not (tmp_path / "kb2").exists()


def test_query_file_that_is_not_utf8(tmp_path: Path) -> None:
    query = tmp_path / "query.rq"
    query.write_bytes(b"CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p \xff }")
    result = run_cli("kb", "import", "--sparql", "http://127.0.0.1:9/q", "--query", query, "-o", tmp_path / "kb")
    assert_clean_failure(result, "E013", "query.rq")
