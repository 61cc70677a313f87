"""Fetching triples from a SPARQL endpoint: one CONSTRUCT query over the SPARQL 1.1
protocol, with the endpoint treated as untrusted input.

Credentials in the URL (``https://user:pw@host/...``) are sent as HTTP basic auth and
never shown: every message and meta.json use `redact_url`, and text the server sends
back is scrubbed of the password and the auth token before it is quoted. Redirects are
not followed (urllib would replay the POST as a GET without the query and forward the
Authorization header to the new host); the error names the target to use instead.
"""
from __future__ import annotations

import base64
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..errors import Errors, KBImportError

DEFAULT_CONSTRUCT = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
# Media types of CONSTRUCT answers we can parse -> our format names.
MEDIA_TYPES = {
    "application/n-triples": "n-triples", "text/plain": "n-triples", "text/turtle": "turtle",
    "application/rdf+xml": "rdf/xml", "application/ld+json": "json-ld", "application/n-quads": "n-quads",
    "application/trig": "trig", "text/n3": "n3",
}
_ACCEPT = "application/n-triples, text/turtle;q=0.9, application/rdf+xml;q=0.5"


def check_url(url: str) -> None:
    """Raise E008 unless `url` is an http(s) URL with a host and a valid port."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as err:
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason=f"invalid URL ({err})")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason="not an http(s) URL with a host"))


def redact_url(url: str) -> str:
    """`url` without user:password and without its query string (which may hold API keys)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


def fetch_construct(url: str, query: str, *, timeout: float = 60.0) -> tuple[bytes, str]:
    """POST a CONSTRUCT query and return (body, format name of the body).

    Every failure (refused connection, timeout, HTTP error, redirect, broken or truncated
    response, unknown media type) raises KBImportError E008 naming the redacted URL.
    """
    check_url(url)
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    headers = {"Accept": _ACCEPT, "Content-Type": "application/sparql-query; charset=utf-8",
               "User-Agent": "spacy-sparse-expert"}
    secrets = [s for s in (parts.password, parts.query) if s]
    if parts.username:
        user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = "Basic " + token
        secrets += [s for s in (password, token) if s]
    request = urllib.request.Request(clean, data=query.encode("utf8"), headers=headers, method="POST")
    shown = redact_url(url)

    def fail(reason: object) -> KBImportError:
        text = str(reason)
        for secret in secrets:
            text = text.replace(secret, "***")
        return KBImportError(Errors.E008.format(url=shown, reason=text))

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
            media = response.headers.get_content_type()
    except urllib.error.HTTPError as err:
        if 300 <= err.code < 400:
            target = redact_url(urllib.parse.urljoin(clean, err.headers.get("Location", "")))
            raise fail(f"HTTP {err.code} redirect to {target}; redirects are not followed, "
                       "pass that URL instead") from None
        try:
            detail = err.read(500).decode("utf8", "replace").strip()
        except (OSError, http.client.HTTPException):
            detail = ""
        hint = " (no graph format fits the answer: is the query a CONSTRUCT query?)" if err.code == 406 else ""
        raise fail(f"HTTP {err.code} {err.reason}: {detail}{hint}") from None
    except (socket.timeout, TimeoutError):
        raise fail(f"no answer within {timeout:g} s (timeout)") from None
    except http.client.IncompleteRead as err:
        raise fail(f"the answer was cut off after {len(err.partial)} bytes") from None
    except http.client.HTTPException as err:  # BadStatusLine, InvalidURL, ...
        raise fail(f"not a valid HTTP answer ({type(err).__name__}: {' '.join(str(err).split())})") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            reason = f"no answer within {timeout:g} s (timeout)"
        raise fail(reason) from None
    name = MEDIA_TYPES.get(media)
    if name is None:
        raise fail(f"unexpected response type {media!r}; is the query a CONSTRUCT query?")
    return body, name


__all__ = ["DEFAULT_CONSTRUCT", "check_url", "fetch_construct", "redact_url"]
