"""A SPARQL endpoint cannot take the machine: a huge Content-Length, an endless body
(chunked, plain or gzip-encoded), a gzip bomb, a server that trickles its answer or its
headers, endless headers and redirect loops each end in one coded error within a few
seconds, in a process whose address space is capped (RLIMIT_AS), never in a raw
MemoryError or a hang. The timeout and the size limit are validated before any request.

Each case runs in a child forked by `sparql_worker.py` (the package is imported once);
the child reports its time and peak RSS, which docs/reliability.md quotes.
"""
from __future__ import annotations

import json
import math
import selectors
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.sparql import DEFAULT_MAX_RESPONSE_BYTES, fetch_construct

WORKER = Path(__file__).with_name("sparql_worker.py")
MiB = 1 << 20
BUDGET = 512 * MiB            # address space a child may add to what it has after the fork
LINE = b'<http://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
BLOCK = LINE * (64 * 1024 // len(LINE))


def _member() -> bytes:
    """One gzip member of 16 MiB of zeros: 16 KB. Members may follow each other (RFC 1952)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(bytes(16 * MiB)) + packer.flush()


MEMBER = _member()


class HostileServer:
    """A raw TCP server on loopback; the first path segment picks the misbehaviour."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, mode: str) -> str:
        return f"http://reader:s3cret-pw@127.0.0.1:{self.port}/{mode}?apikey=k3y-123"

    def _accept(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                header, _, body = head.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in header.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:  # unread bytes would make the close a reset
                    body += conn.recv(65536)
                path = head.split(b" ", 2)[1].decode()
                self.requests.append(path)
                mode = path.strip("/").split("?")[0].replace("-", "_")
                getattr(self, f"answer_{mode}")(conn, path)
            except OSError:  # the client gave up: that is the point
                pass

    @staticmethod
    def _head(conn: socket.socket, *headers: str, status: str = "200 OK") -> None:
        lines = [f"HTTP/1.1 {status}", *headers]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def answer_huge_length(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", f"Content-Length: {10**15}")
        while not self.closing:
            conn.sendall(BLOCK)

    def answer_endless_chunked(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", "Transfer-Encoding: chunked")
        chunk = f"{len(BLOCK):x}\r\n".encode() + BLOCK + b"\r\n"
        while not self.closing:
            conn.sendall(chunk)

    def answer_endless_plain(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", "Connection: close")
        while not self.closing:
            conn.sendall(BLOCK)

    def answer_gzip_bomb(self, conn: socket.socket, path: str) -> None:
        """1 GiB of zeros in 1 MB: 64 gzip members of 16 MiB each, with a Content-Length."""
        body = MEMBER * 64
        self._head(conn, "Content-Type: application/n-triples", "Content-Encoding: gzip",
                   f"Content-Length: {len(body)}")
        conn.sendall(body)

    def answer_endless_gzip(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", "Content-Encoding: gzip", "Connection: close")
        while not self.closing:
            conn.sendall(MEMBER)

    def answer_trickle_body(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", "Content-Length: 1000000")
        while not self.closing:
            conn.sendall(b" ")
            time.sleep(0.05)

    def answer_trickle_headers(self, conn: socket.socket, path: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/n-triples\r\nX-Slow: ")
        while not self.closing:
            conn.sendall(b"a")
            time.sleep(0.05)

    def answer_endless_headers(self, conn: socket.socket, path: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not self.closing:
            conn.sendall(b"X-More: yes\r\n" * 100)

    def answer_redirect_loop(self, conn: socket.socket, path: str) -> None:
        self._head(conn, f"Location: {path}", "Content-Length: 0", status="302 Found")

    def answer_brotli(self, conn: socket.socket, path: str) -> None:
        self._head(conn, "Content-Type: application/n-triples", "Content-Encoding: br", "Content-Length: 4")
        conn.sendall(b"\x0b\x00\x80\x03")

    def answer_ok_gzip(self, conn: socket.socket, path: str) -> None:
        body = zlib.compressobj(6, zlib.DEFLATED, 31)
        data = body.compress(LINE * 3) + body.flush()
        self._head(conn, "Content-Type: application/n-triples", "Content-Encoding: gzip",
                   f"Content-Length: {len(data)}")
        conn.sendall(data)

    def close(self) -> None:
        self.closing = True
        self.sock.close()


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self._line(180) == "ready"

    def _line(self, seconds: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(seconds):
                raise AssertionError(f"the worker said nothing for {seconds} s")
        return self.proc.stdout.readline().strip()

    def run(self, url: str, *, timeout: float = 5.0, max_response_bytes: int | None = None,
            budget: int = BUDGET, hard_limit: float = 30.0) -> dict:
        assert self.proc.stdin is not None
        command = {"url": url, "timeout": timeout, "max_response_bytes": max_response_bytes, "budget": budget,
                   "hard_limit": hard_limit}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line(hard_limit + 30))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    hostile = HostileServer()
    yield hostile
    hostile.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    running = Worker()
    yield running
    running.close()


# mode -> (timeout, max_response_bytes or None for the default, code, words the message holds)
CASES = {
    "huge-length": (5.0, None, "E100", "it announced 1,000,000,000,000,000 bytes"),
    "endless-chunked": (5.0, 16 * MiB, "E100", f"more than {16 * MiB:,} bytes were sent"),
    "endless-plain": (5.0, 16 * MiB, "E100", f"more than {16 * MiB:,} bytes were sent"),
    "gzip-bomb": (5.0, 16 * MiB, "E100", "gzip-encoded bytes decode to more"),
    "endless-gzip": (5.0, 16 * MiB, "E100", "gzip-encoded bytes decode to more"),
    "trickle-body": (1.0, None, "E101", "no complete answer within 1 s"),
    "trickle-headers": (1.0, None, "E101", "no complete answer within 1 s"),
    "endless-headers": (5.0, None, "E008", "not a valid HTTP answer"),
    "redirect-loop": (5.0, None, "E008", "redirects are not followed"),
    "brotli": (5.0, None, "E104", "Content-Encoding 'br'"),
}
# the default limit is far above the memory cap: the endless and bomb answers then end in
# running out of memory, which must be just as clean
AT_DEFAULT_LIMIT = {"endless-chunked", "gzip-bomb", "endless-gzip"}


def report(mode: str, result: dict) -> None:
    """One row of the table in docs/reliability.md (shown with pytest -s)."""
    growth = (result["peak_rss_kb"] - result["rss_start_kb"]) / 1024
    print(f"\n| {mode} | {growth:.0f} MiB | {result['seconds']:.2f} s | {result.get('error', '')[:14]} |")


def check_clean(result: dict, code: str, words: str, server: HostileServer, mode: str) -> str:
    assert "killed" not in result and "raw" not in result, result
    message = result.get("error", "")
    assert f"[SSE-{code}]" in message and words in message, result
    assert f"http://127.0.0.1:{server.port}/{mode}" in message
    assert "s3cret-pw" not in message and "k3y-123" not in message and "reader" not in message
    return message


@pytest.mark.parametrize("mode", sorted(CASES))
def test_hostile_endpoint_ends_cleanly(mode: str, server: HostileServer, worker: Worker) -> None:
    timeout, limit, code, words = CASES[mode]
    before = len(server.requests)
    result = worker.run(server.url(mode), timeout=timeout, max_response_bytes=limit)
    check_clean(result, code, words, server, mode)
    assert result["seconds"] < timeout + 4, result
    assert result["peak_rss_kb"] - result["rss_start_kb"] < (limit or 0) * 3 // 1024 + 64 * 1024, result
    assert len(server.requests) == before + 1  # one request: no retry, no redirect followed
    report(mode, result)


@pytest.mark.parametrize("mode", sorted(AT_DEFAULT_LIMIT))
def test_default_limit_under_a_memory_cap(mode: str, server: HostileServer, worker: Worker) -> None:
    """At the 4 GiB default a 512 MiB cap is hit first: E105, or E100 if the bytes
    stop first; never a raw MemoryError and never the whole machine."""
    result = worker.run(server.url(mode), timeout=20.0, budget=BUDGET)
    assert "killed" not in result and "raw" not in result, result
    assert any(f"[SSE-{code}]" in result.get("error", "") for code in ("E105", "E100")), result
    assert "s3cret-pw" not in result["error"] and "k3y-123" not in result["error"]
    assert result["seconds"] < 20, result
    report(f"{mode} (default limit)", result)


def test_gzip_answer_within_the_limit_is_decoded(server: HostileServer, worker: Worker) -> None:
    result = worker.run(server.url("ok-gzip"), timeout=5.0, max_response_bytes=len(LINE) * 3)
    assert result.get("triples") == 3, result  # the parser does not deduplicate
    result = worker.run(server.url("ok-gzip"), timeout=5.0, max_response_bytes=len(LINE) * 3 - 1)
    check_clean(result, "E100", "decode to more", server, "ok-gzip")


@pytest.mark.parametrize("timeout", [0, -1, 0.0, -0.5, math.nan, math.inf, -math.inf, 1e300, 10**10, 10**400, True, "60", None])
def test_invalid_timeout_is_refused_before_any_request(timeout: object, server: HostileServer) -> None:
    before = len(server.requests)
    with pytest.raises(KBImportError, match=r"\[SSE-E102\] SPARQL timeout"):
        fetch_construct(server.url("huge-length"), "CONSTRUCT {} WHERE {}", timeout=timeout)  # type: ignore[arg-type]
    assert len(server.requests) == before


@pytest.mark.parametrize("limit", [0, -1, 1.5, float("nan"), True, "1000", None])
def test_invalid_size_limit_is_refused_before_any_request(limit: object, server: HostileServer) -> None:
    before = len(server.requests)
    with pytest.raises(KBImportError, match=r"\[SSE-E103\] SPARQL max_response_bytes"):
        fetch_construct(server.url("huge-length"), "CONSTRUCT {} WHERE {}",
                        max_response_bytes=limit)  # type: ignore[arg-type]
    assert len(server.requests) == before


def test_default_limit_is_large() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES >= 1 << 32



def test_https_endpoint_that_never_completes_the_handshake(server: HostileServer, worker: Worker) -> None:
    """TLS goes through the same deadline: a server that takes the connection and never
    answers the ClientHello ends in E101, not a hang."""
    url = server.url("never").replace("http://", "https://")
    result = worker.run(url, timeout=1.0)
    assert "killed" not in result and "raw" not in result, result
    assert "[SSE-E101]" in result["error"] and f"https://127.0.0.1:{server.port}/never " in result["error"], result
    assert "s3cret-pw" not in result["error"] and "k3y-123" not in result["error"]
    assert result["seconds"] < 5, result
    report("https handshake stall", result)


def test_https_endpoint_that_trickles_its_handshake(worker: Worker) -> None:
    """A TLS record header announcing 16 KiB, then a byte every 50 ms: each read gets a
    byte in time, yet the handshake ends at the timeout (ssl bounds a whole handshake by
    the socket timeout, and the request's deadline watches the socket from its creation)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the ClientHello
            try:
                conn.sendall(b"\x16\x03\x03\x40\x00")
                while not stop.is_set():
                    conn.sendall(b"\x00")
                    time.sleep(0.05)
            except OSError:
                pass

    threading.Thread(target=trickle, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        result = worker.run(f"https://r3ader:s3cret-pw@127.0.0.1:{port}/sparql?apikey=k3y-123", timeout=1.0)
    finally:
        stop.set()
        listener.close()
    assert "killed" not in result and "raw" not in result, result
    assert "[SSE-E101]" in result["error"] and f"https://127.0.0.1:{port}/sparql " in result["error"], result
    assert "s3cret-pw" not in result["error"] and "k3y-123" not in result["error"]
    assert result["seconds"] < 5, result
    report("https handshake trickle", result)
