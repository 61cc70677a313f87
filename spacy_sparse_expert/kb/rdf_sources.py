"""Where triples come from: RDF files (any common syntax, optionally compressed),
directories of them, Oxigraph store directories and SPARQL endpoints.

Every source is read as a stream of ``pyoxigraph.Quad`` objects: pyoxigraph's Rust
parsers are the fast path for six syntaxes; rdflib is the fallback (``engine="rdflib"``,
and always for N3, whose rules pyoxigraph cannot read), its terms converted to the same
objects. SPARQL CONSTRUCT results are fetched with urllib and parsed by pyoxigraph. Errors are translated into
coded ``KBImportError`` messages naming the file and line.
"""
from __future__ import annotations

import base64
import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import pyoxigraph as ox

from ..errors import Errors, KBImportError


@dataclass(frozen=True)
class RdfFormatInfo:
    name: str                  # canonical name, as written into meta.json
    oxigraph: ox.RdfFormat
    rdflib: str                # rdflib parser name
    extensions: tuple[str, ...]
    aliases: tuple[str, ...]   # other spellings accepted by --format


FORMATS: tuple[RdfFormatInfo, ...] = (
    RdfFormatInfo("turtle", ox.RdfFormat.TURTLE, "turtle", (".ttl",), ("ttl",)),
    RdfFormatInfo("n-triples", ox.RdfFormat.N_TRIPLES, "nt", (".nt",), ("nt", "ntriples")),
    RdfFormatInfo("n-quads", ox.RdfFormat.N_QUADS, "nquads", (".nq",), ("nq", "nquads")),
    RdfFormatInfo("trig", ox.RdfFormat.TRIG, "trig", (".trig",), ()),
    RdfFormatInfo("json-ld", ox.RdfFormat.JSON_LD, "json-ld", (".jsonld", ".json-ld"), ("jsonld",)),
    RdfFormatInfo("rdf/xml", ox.RdfFormat.RDF_XML, "xml", (".rdf", ".owl", ".xml"), ("xml", "rdfxml", "rdf")),
    RdfFormatInfo("n3", ox.RdfFormat.N3, "n3", (".n3",), ()),
)
_BY_NAME = {alias: f for f in FORMATS for alias in (f.name, *f.aliases)}
_BY_EXT = {ext: f for f in FORMATS for ext in f.extensions}
COMPRESSIONS: dict[str, Callable[[Path], IO[bytes]]] = {
    ".gz": lambda p: gzip.open(p, "rb"),
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
}
ACCEPTED = ", ".join(f"{f.name} ({'/'.join(f.extensions)})" for f in FORMATS)
# Media types of SPARQL CONSTRUCT responses we can parse.
_MEDIA_TYPES = {
    "application/n-triples": "n-triples", "text/plain": "n-triples", "text/turtle": "turtle",
    "application/rdf+xml": "rdf/xml", "application/ld+json": "json-ld", "application/n-quads": "n-quads",
    "application/trig": "trig", "text/n3": "n3",
}
DEFAULT_CONSTRUCT = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"


def format_by_name(name: str, where: str | Path = "--format") -> RdfFormatInfo:
    """The format called `name` (any accepted spelling). Raises E001 for unknown names."""
    info = _BY_NAME.get(name.strip().lower())
    if info is None:
        raise KBImportError(Errors.E001.format(fmt=name, path=where, accepted=ACCEPTED))
    return info


def split_extension(path: Path) -> tuple[RdfFormatInfo | None, str | None]:
    """(format, compression suffix) guessed from a file name like `x.ttl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSIONS else None
    fmt = _BY_EXT.get(suffixes[-1]) if suffixes else None
    return fmt, compression


@dataclass(frozen=True)
class RdfSource:
    """One place to read triples from."""

    kind: str                       # "file" | "store" | "sparql"
    location: str                   # file/store path, or endpoint URL
    fmt: RdfFormatInfo | None = None
    compression: str | None = None
    query: str | None = None        # SPARQL CONSTRUCT query

    @property
    def display(self) -> str:
        return redact_url(self.location) if self.kind == "sparql" else self.location


def is_oxigraph_store(path: Path) -> bool:
    """A RocksDB directory as written by ``pyoxigraph.Store(path)`` / ``oxigraph load``."""
    return path.is_dir() and (path / "CURRENT").is_file() and any(path.glob("MANIFEST-*"))


def resolve_sources(sources: Sequence[str | Path], *, fmt: str | None = None) -> list[RdfSource]:
    """Expand files, directories and store directories into a list of sources.

    A directory is searched recursively for files with a known RDF extension (sorted, so
    the import is deterministic); an explicit `fmt` applies to every file.
    """
    forced = format_by_name(fmt) if fmt else None
    out: list[RdfSource] = []
    for raw in sources:
        path = Path(raw)
        if not path.exists():
            raise KBImportError(Errors.E004.format(path=path))
        if is_oxigraph_store(path):
            out.append(RdfSource("store", str(path)))
        elif path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and (forced or split_extension(p)[0])]
            if not found:
                raise KBImportError(Errors.E015.format(path=path, accepted=ACCEPTED))
            out.extend(_file_source(p, forced) for p in found)
        else:
            out.append(_file_source(path, forced))
    return out


def _file_source(path: Path, forced: RdfFormatInfo | None) -> RdfSource:
    guessed, compression = split_extension(path)
    info = forced or guessed
    if info is None:
        raise KBImportError(Errors.E001.format(fmt="".join(path.suffixes) or "(no extension)", path=path,
                                               accepted=ACCEPTED))
    return RdfSource("file", str(path), info, compression)


def sparql_source(url: str, query: str | None = None) -> RdfSource:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise KBImportError(Errors.E008.format(url=redact_url(url), reason="not an http(s) URL"))
    return RdfSource("sparql", url, query=query or DEFAULT_CONSTRUCT)


def redact_url(url: str) -> str:
    """`url` without user:password and without its query string (which may hold API keys)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- reading ---------------------------------------------------------------------------


def open_binary(source: RdfSource) -> IO[bytes]:
    path = Path(source.location)
    return COMPRESSIONS[source.compression](path) if source.compression else path.open("rb")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_DTD = re.compile(rb"<!\s*(doctype|entity)", re.IGNORECASE)


def check_xml_safe(source: RdfSource) -> None:
    """Refuse RDF/XML that declares a DOCTYPE or entities, before any parser sees it.

    The scan reads only the file itself (decompressed), never what an entity refers
    to, so an external entity pointing at a local file or URL is never dereferenced.
    """
    tail = b""
    with open_binary(source) as fh:
        while chunk := fh.read(1 << 20):
            if _DTD.search(tail + chunk):
                raise KBImportError(Errors.E003.format(path=source.location))
            tail = chunk[-16:]


def xml_error_line(source: RdfSource) -> int | None:
    """Line of the first XML well-formedness error, found with expat (which never loads
    external entities; DOCTYPEs were refused before). None if the XML is well-formed."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    try:
        with open_binary(source) as fh:
            parser.ParseFile(fh)
    except xml.parsers.expat.ExpatError as err:
        return int(err.lineno)
    except (OSError, EOFError):
        return None
    return None


@contextlib.contextmanager
def read_quads(source: RdfSource, *, base_iri: str | None = None, engine: str = "oxigraph",
               timeout: float = 60.0) -> Iterator[Iterable[ox.Quad]]:
    """Context manager giving the quads of one source as a plain iterable.

    Errors raised while the caller iterates (pyoxigraph parses lazily) are translated on
    the way out into KBImportError naming the source and line. No generator sits between
    the Rust parser and the caller's loop: on FB15k-237 that layer alone cost ~25%.
    """
    where = source.display
    info = source.fmt
    try:
        with contextlib.ExitStack() as stack:
            if source.kind == "store":
                yield _store_quads(source)
            elif source.kind == "sparql":
                data, info = fetch_construct(source.location, source.query or DEFAULT_CONSTRUCT, timeout=timeout)
                if info.name == "rdf/xml" and _DTD.search(data):  # an endpoint is input too
                    raise KBImportError(Errors.E003.format(path=where))
                yield ox.parse(data, format=info.oxigraph, base_iri=source.location)
            else:
                assert info is not None
                if info.name == "rdf/xml":
                    check_xml_safe(source)
                # N3 goes to rdflib: pyoxigraph rejects N3 formulas with variables (rules),
                # which rdflib reads as quoted graphs that the compiler then skips.
                if engine == "rdflib" or info.name == "n3":
                    yield _rdflib_quads(source, base_iri)
                elif source.compression:
                    # A C-level buffer in front of the Python decompressor: pyoxigraph reads
                    # in small chunks, and GzipFile.read is Python code.
                    raw = stack.enter_context(open_binary(source))
                    yield ox.parse(io.BufferedReader(raw, 1 << 20), format=info.oxigraph,  # type: ignore[arg-type]
                                   base_iri=base_iri)
                else:
                    yield ox.parse(path=source.location, format=info.oxigraph, base_iri=base_iri)
    except SyntaxError as err:
        reason = err.msg or str(err)
        if "absolute IRI" in reason or "relative" in reason.lower():
            reason += " (relative IRIs need a base: pass --base IRI)"
        line: int | str | None = err.lineno
        if line is None and info is not None and info.name == "rdf/xml" and source.kind == "file":
            line = xml_error_line(source)  # pyoxigraph's XML errors carry no position
        line = "?" if line is None else line
        name = info.name if info is not None else "?"
        raise KBImportError(Errors.E002.format(path=where, fmt=name, line=line, reason=reason)) from err
    except (OSError, EOFError) as err:  # bad gzip/bz2 data, unreadable file
        raise KBImportError(Errors.E013.format(path=where, reason=err)) from err


def _store_quads(source: RdfSource) -> Iterator[ox.Quad]:
    try:
        store = ox.Store.read_only(source.location)
    except OSError as err:
        raise KBImportError(Errors.E013.format(path=source.location, reason=err)) from err
    yield from store.quads_for_pattern(None, None, None, None)


def fetch_construct(url: str, query: str, *, timeout: float = 60.0) -> tuple[bytes, RdfFormatInfo]:
    """POST a CONSTRUCT query (SPARQL 1.1 protocol) and return (body, format of body).

    Credentials in the URL (https://user:pw@host/...) are sent as HTTP basic auth and
    never stored: sources are recorded with `redact_url`.
    """
    parts = urllib.parse.urlsplit(url)
    clean = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                     parts.path, parts.query, "")) if parts.hostname else url
    headers = {
        "Accept": "application/n-triples, text/turtle;q=0.9, application/rdf+xml;q=0.5",
        "Content-Type": "application/sparql-query; charset=utf-8",
        "User-Agent": "spacy-sparse-expert",
    }
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    request = urllib.request.Request(clean, data=query.encode("utf8"), headers=headers, method="POST")
    shown = redact_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            media = response.headers.get_content_type()
    except urllib.error.HTTPError as err:
        detail = err.read(500).decode("utf8", "replace").strip()
        raise KBImportError(Errors.E008.format(url=shown, reason=f"HTTP {err.code} {err.reason}: {detail}")) from err
    except (socket.timeout, TimeoutError) as err:
        raise KBImportError(Errors.E008.format(url=shown, reason=f"no answer within {timeout:g} s (timeout)")) from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            reason = f"no answer within {timeout:g} s (timeout)"
        raise KBImportError(Errors.E008.format(url=shown, reason=reason)) from err
    name = _MEDIA_TYPES.get(media)
    if name is None:
        raise KBImportError(Errors.E008.format(url=shown, reason=f"unexpected response type {media!r}; "
                                               "is the query a CONSTRUCT query?"))
    return body, format_by_name(name)


def _rdflib_quads(source: RdfSource, base_iri: str | None) -> list[ox.Quad]:
    """Parse with rdflib and convert its terms (the slow fallback path)."""
    import warnings

    import rdflib

    assert source.fmt is not None
    graph = rdflib.Dataset() if source.fmt.name in ("n-quads", "trig") else rdflib.Graph()
    # rdflib's own parsers use its deprecated ConjunctiveGraph internally; not our concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            with open_binary(source) as fh:
                graph.parse(fh, format=source.fmt.rdflib, publicID=base_iri)
        except (OSError, EOFError) as err:
            raise KBImportError(Errors.E013.format(path=source.location, reason=err)) from err
        except Exception as err:  # rdflib raises many unrelated types for bad syntax
            line: int | str = "?"
            if isinstance(getattr(err, "lines", None), int):  # notation3's BadSyntax, 0-based
                line = err.lines + 1  # type: ignore[attr-defined]
            elif source.fmt.name == "rdf/xml":
                line = xml_error_line(source) or "?"
            why = getattr(err, "_why", None)
            first = why or (str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            raise KBImportError(Errors.E002.format(path=source.location, fmt=source.fmt.name, line=line,
                                                   reason=first)) from err
        triples = graph.quads((None, None, None, None)) if isinstance(graph, rdflib.Dataset) else (
            (s, p, o, None) for s, p, o in graph)
        out = []
        for s, p, o, _ in triples:
            subject, obj = _from_rdflib(s), _from_rdflib(o)
            if subject is not None and obj is not None and isinstance(p, rdflib.URIRef):
                out.append(ox.Quad(subject, ox.NamedNode(str(p)), obj))
    return out


def _from_rdflib(term: Any) -> Any:
    import rdflib

    if isinstance(term, rdflib.URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, rdflib.BNode):
        return ox.BlankNode(str(term))
    if isinstance(term, rdflib.Literal):
        if term.language:
            return ox.Literal(str(term), language=term.language)
        return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)) if term.datatype else None)
    return None
