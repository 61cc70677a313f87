"""Fetching triples from a SPARQL endpoint: one CONSTRUCT query over the SPARQL 1.1
protocol, with the endpoint treated as untrusted input.

Secrets in the URL never reach data or output. Credentials (``https://user:pw@host/...``)
are sent as HTTP basic auth, the query string (API keys) is sent as it is; both, and the
fragment, are stripped from the URL that is shown, stored in meta.json or used as the base
IRI of the relative IRIs in the answer (`redact_url`). Text the server sends back is
scrubbed of every spelling of those secrets before it is quoted (`scrub`).

The answer is bounded: at most `max_response_bytes` bytes (after gzip decoding, and
before it), and one deadline of `timeout` seconds for the whole request, whatever phase
it is in: a server that trickles a byte a second fails at the deadline, not never.
Redirects are not followed (urllib would replay the POST as a GET without the query and
forward the Authorization header to the new host); the error names the target instead.
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import io
import math
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Errors, KBImportError

DEFAULT_CONSTRUCT = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 7 * 24 * 3600.0  # a week; far beyond it, threading and socket timeouts overflow
# The whole answer is held in memory and parsed from there; 4 GiB is ~30M N-Triples lines.
DEFAULT_MAX_RESPONSE_BYTES = 4 << 30
# Media types of CONSTRUCT answers we can parse -> our format names.
MEDIA_TYPES = {
    "application/n-triples": "n-triples", "text/plain": "n-triples", "text/turtle": "turtle",
    "application/rdf+xml": "rdf/xml", "application/ld+json": "json-ld", "application/n-quads": "n-quads",
    "application/trig": "trig", "text/n3": "n3",
}
_ACCEPT = "application/n-triples, text/turtle;q=0.9, application/rdf+xml;q=0.5"
_CHUNK = 1 << 20
_GZIP = ("gzip", "x-gzip")
_MIN_SECRET = 4


def check_url(url: str) -> None:
    """Raise E008 unless `url` is an http(s) URL with a host and a valid port.

    The reason never quotes the parser's message: it may hold the user:password part.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as err:
        text = str(err)
        why = ("the port is not a number from 0 to 65535" if "port" in text.lower() else
               "the host in [ ] is not an IP address" if "IPv" in text else "it does not parse")
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason=f"invalid URL: {why}")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason="not an http(s) URL with a host"))
    if "@" in parts.path:
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason=(
            "invalid URL: '@' in the path (a user name or password holding '/', '?' or '#' must be "
            "percent-encoded: %2F, %3F, %23; '@' as %40)")))


def redact_url(url: str) -> str:
    """`url` as it may be shown, stored and used as a base IRI: without user:password, the
    query string (which may hold API keys) and the fragment. A path holding '@' is not
    shown either: in ``http://u:12/pw@host/`` the authority ends at the first '/', so the
    rest of the password is the path (`check_url` refuses such endpoint URLs)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return "<invalid URL>"
    path = "/(path not shown)" if "@" in parts.path else parts.path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))


def url_secrets(url: str) -> tuple[str, ...]:
    """Every spelling of every secret in `url` (user, password, their basic-auth token,
    query string and its values, fragment; raw, percent-decoded and -encoded), longest
    first. Strings under 4 characters are left out: scrubbing "1" or "nt" (``?x=1``,
    ``?format=nt``) from a quoted message would mangle its line numbers and words."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return ()
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, _, password = userinfo.partition(":")
        plain_user, plain_password = urllib.parse.unquote(user), urllib.parse.unquote(password)
        found += [userinfo, user, password, plain_user, plain_password, _basic_token(plain_user, plain_password)]
    for raw in (parts.query, parts.fragment):
        if not raw:
            continue
        found.append(raw)
        for piece in raw.split("&"):
            found += [piece, piece.partition("=")[2]]
    found += [form for text in list(found) for form in (urllib.parse.unquote(text), urllib.parse.unquote_plus(text))]
    found += [urllib.parse.quote(text, safe="") for text in list(found)]
    return tuple(sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each of `secrets` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def scrubbed_errors(url: str) -> Iterator[None]:
    """Parse errors quote the endpoint's answer, which may echo the secrets it was sent:
    a SyntaxError leaving this block has them replaced by ``***``."""
    secrets = url_secrets(url)
    try:
        yield
    except SyntaxError as err:
        message = err.msg or str(err)
        if not any(secret in message for secret in secrets):
            raise
        clean = SyntaxError(scrub(message, secrets))
        clean.lineno, clean.offset = err.lineno, err.offset
        raise clean from None


def check_limits(timeout: Any, max_response_bytes: Any) -> None:
    """Raise E102/E103 unless `timeout` is a finite number of seconds in (0, MAX_TIMEOUT]
    and `max_response_bytes` a whole number >= 1."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise KBImportError(Errors.E102.format(value=timeout, reason="not a number", most=MAX_TIMEOUT))
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond any float
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        reason = "out of range" if isinstance(timeout, int) or math.isfinite(seconds) else "not finite"
        raise KBImportError(Errors.E102.format(value=timeout, reason=reason, most=MAX_TIMEOUT))
    if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int):
        raise KBImportError(Errors.E103.format(value=max_response_bytes, reason="not a whole number"))
    if max_response_bytes < 1:
        raise KBImportError(Errors.E103.format(value=max_response_bytes, reason="less than 1"))


def _basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class _Endpoint:
    request_url: str              # what is requested: no user:password, no fragment
    shown: str                    # what is shown and stored (`redact_url`)
    authorization: str | None     # basic auth from the URL's user:password
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, url: str) -> _Endpoint:
        parts = urllib.parse.urlsplit(url)
        request_url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        authorization = None
        if parts.username is not None:
            user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            authorization = "Basic " + _basic_token(user, password)
        return cls(request_url, redact_url(url), authorization, url_secrets(url))


class _Transfer:
    """One request's deadline and byte count. At the deadline the request's connections
    are shut down, which ends a blocked read in any phase (TLS handshake included): a
    per-read socket timeout alone lets a server that trickles a byte a second go on forever.

    Each connection is watched through a duplicate of its descriptor: shutting that down
    ends the connection even after `ssl` took the original socket object over, and it is
    never reused for another file before `__exit__` closes it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.received = 0
        self.expired = False
        self._twins: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Transfer:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for twin in self._twins:
                twin.close()
            self._twins.clear()

    def watch(self, sock: socket.socket) -> None:
        twin = sock.dup()
        with self._lock:
            self._twins.append(twin)
            expired = self.expired
        if expired:
            _shutdown(twin)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for twin in self._twins:
                _shutdown(twin)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already, or the peer went away
        pass


def _watched(base: type[http.client.HTTPConnection], transfer: _Transfer) -> type[http.client.HTTPConnection]:
    class Watched(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # http.client opens its TCP connection through this attribute (a hook kept for
            # tests and proxies): the socket is watched before a proxy tunnel or TLS handshake.
            create = self._create_connection

            def create_watched(*a: Any, **k: Any) -> socket.socket:
                sock = create(*a, **k)
                transfer.watch(sock)
                return sock

            self._create_connection = create_watched

    return Watched


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, transfer: _Transfer) -> None:
        super().__init__()
        self._transfer = transfer

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self._transfer), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, transfer: _Transfer) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)
        self._transfer = transfer

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, self._transfer), req, context=self._tls)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


class _Gunzip:
    """Incremental gzip decoding that never produces more than it is allowed to: a small
    gzip bomb cannot expand beyond the response limit."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def complete(self) -> bool:
        return self._inflate.eof

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode `data`, giving at most `room` + 1 bytes (one more shows an overflow)."""
        out: list[bytes] = []
        made = 0
        while data and made <= room:
            if self._inflate.eof:  # another gzip member follows
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            piece = self._inflate.decompress(data, room + 1 - made)  # > 0: 0 means unlimited
            out.append(piece)
            made += len(piece)
            data = self._inflate.unconsumed_tail or (self._inflate.unused_data if self._inflate.eof else b"")
        return b"".join(out)


def _declared_length(headers: Any) -> int | None:
    """The Content-Length http.client goes by (none for a chunked answer)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return None
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _read_body(response: http.client.HTTPResponse, transfer: _Transfer, limit: int, endpoint: _Endpoint) -> bytes:
    """The whole answer, decoded, within `limit` bytes and the transfer's deadline."""
    shown = endpoint.shown
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", *_GZIP):
        raise KBImportError(Errors.E104.format(url=shown, encoding=scrub(encoding, endpoint.secrets)))
    gunzip = _Gunzip() if encoding in _GZIP else None
    expected = _declared_length(response.headers)
    if expected is not None and expected > limit:
        raise KBImportError(Errors.E100.format(url=shown, limit=limit, what=f"it announced {expected:,} bytes"))
    out = io.BytesIO()
    while chunk := response.read(_CHUNK):
        transfer.received += len(chunk)
        if transfer.received > limit:
            raise KBImportError(Errors.E100.format(url=shown, limit=limit,
                                                   what=f"more than {limit:,} bytes were sent"))
        if gunzip is not None:
            try:
                chunk = gunzip.feed(chunk, limit - out.tell())
            except zlib.error as err:
                raise KBImportError(Errors.E008.format(url=shown, reason=f"the gzip-encoded answer is damaged "
                                                       f"({err})")) from None
        out.write(chunk)
        if out.tell() > limit:
            raise KBImportError(Errors.E100.format(
                url=shown, limit=limit, what=f"{transfer.received:,} gzip-encoded bytes decode to more"))
    if transfer.expired:  # the deadline shut the socket: what came before is not the whole answer
        raise TimeoutError
    if (expected is not None and transfer.received < expected) or (gunzip is not None and not gunzip.complete):
        raise http.client.IncompleteRead(b"")
    return out.getvalue()


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The start of an error answer's text (gzip-decoded), for the message."""
    try:
        raw = err.read(4096)
        if (err.headers.get("Content-Encoding") or "").strip().lower() in _GZIP:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, 500)
    except (OSError, http.client.HTTPException, zlib.error):
        return ""
    return raw[:500].decode("utf8", "replace").strip()


def fetch_construct(url: str, query: str, *, timeout: float = DEFAULT_TIMEOUT,
                    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> tuple[bytes, str]:
    """POST a CONSTRUCT query and return (body, format name of the body).

    timeout (float): seconds for the whole request, connection to last byte.
    max_response_bytes (int): most bytes of the answer, as sent and after gzip decoding.
    Failures raise KBImportError naming the redacted URL: E101 past the deadline, E100
    for a too large answer, E104 for an encoding not asked for, E105 out of memory, E008
    for the rest (refused connection, HTTP error, redirect, cut-off, unknown media type).
    """
    check_limits(timeout, max_response_bytes)
    check_url(url)
    endpoint = _Endpoint.parse(url)
    headers = {"Accept": _ACCEPT, "Accept-Encoding": "gzip", "User-Agent": "spacy-sparse-expert",
               "Content-Type": "application/sparql-query; charset=utf-8"}
    if endpoint.authorization:
        headers["Authorization"] = endpoint.authorization
    request = urllib.request.Request(endpoint.request_url, data=query.encode("utf8"), headers=headers, method="POST")
    transfer = _Transfer(float(timeout))

    def fail(reason: str) -> KBImportError:
        return KBImportError(Errors.E008.format(url=endpoint.shown, reason=reason))

    def quoted(text: object) -> str:  # what the server or an exception says may echo the URL's secrets
        return scrub(" ".join(str(text).split()), endpoint.secrets)

    def late() -> KBImportError:
        return KBImportError(Errors.E101.format(url=endpoint.shown, seconds=timeout, received=transfer.received))

    opener = urllib.request.build_opener(_NoRedirect, _HTTPHandler(transfer), _HTTPSHandler(transfer))
    with transfer:
        try:
            with opener.open(request, timeout=timeout) as response:
                media = response.headers.get_content_type()
                name = MEDIA_TYPES.get(media)
                if name is None:
                    raise fail(f"unexpected response type {quoted(repr(media))}; is the query a CONSTRUCT query?")
                body = _read_body(response, transfer, max_response_bytes, endpoint)
        except urllib.error.HTTPError as err:
            with err:
                if 300 <= err.code < 400:
                    target = redact_url(urllib.parse.urljoin(endpoint.request_url, err.headers.get("Location", "")))
                    raise fail(f"HTTP {err.code} redirect to {quoted(target)}; redirects are not followed, "
                               "pass that URL instead") from None
                detail = _error_detail(err)
                if transfer.expired:
                    raise late() from None
                hint = " (no graph format fits the answer: is the query a CONSTRUCT query?)" if err.code == 406 else ""
                raise fail(f"HTTP {err.code} {quoted(err.reason)}: {quoted(detail)}{hint}") from None
        except MemoryError:
            raise KBImportError(Errors.E105.format(url=endpoint.shown, received=transfer.received,
                                                   limit=max_response_bytes)) from None
        except (http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", err)
            if transfer.expired or isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
                raise late() from None
            if isinstance(err, http.client.IncompleteRead):
                raise fail(f"the answer was cut off after {transfer.received} bytes") from None
            if isinstance(err, http.client.HTTPException):  # BadStatusLine, InvalidURL, ...
                raise fail(f"not a valid HTTP answer ({type(err).__name__}: {quoted(err)})") from None
            raise fail(quoted(reason)) from None
    return body, name


__all__ = ["DEFAULT_CONSTRUCT", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_TIMEOUT", "check_limits", "check_url",
           "fetch_construct", "redact_url", "scrub", "scrubbed_errors", "url_secrets"]
