"""Where triples come from: RDF files (any common syntax, optionally compressed),
directories of them, Oxigraph store directories and SPARQL endpoints (`sparql.py`).

Every source is read as a stream of ``pyoxigraph.Quad`` objects: pyoxigraph's Rust
parsers are the fast path for six syntaxes; rdflib is the fallback (``engine="rdflib"``,
and always for N3, whose rules pyoxigraph cannot read), its terms converted to the same
objects. Errors are translated into coded ``KBImportError`` messages naming the file and
line. Files are untrusted: the checks of `untrusted.py` (DOCTYPEs and entities, XML
well-formedness and depth, remote JSON-LD contexts) run before a parser sees a document.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyoxigraph as ox

from ..errors import Errors, KBImportError
from .source_stream import AUTO, DECOMPRESSORS, DEFAULT_MAX_BYTES, STDIN, ReadStats, open_once, spool
from .sparql import (DEFAULT_CONSTRUCT, DEFAULT_MAX_RESPONSE_BYTES, check_url, fetch_construct, redact_url,
                     scrubbed_errors)
from .untrusted import (DEFAULT_MAX_XML_DEPTH, check_jsonld_contexts, check_xml_safe, check_xml_well_formed,
                        declares_dtd, xml_error)


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
COMPRESSIONS = tuple(DECOMPRESSORS)  # file name suffixes; the content is sniffed when there is none
ACCEPTED = ", ".join(f"{f.name} ({'/'.join(f.extensions)})" for f in FORMATS)


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
    compression: str | None = None  # ".gz", ".bz2", ".xz", or "auto": from the first bytes
    query: str | None = None        # SPARQL CONSTRUCT query

    @property
    def display(self) -> str:
        """The location as it may be shown and stored: an endpoint URL without its secrets."""
        return redact_url(self.location) if self.kind == "sparql" else self.location

    def __repr__(self) -> str:  # the dataclass repr would show an endpoint's credentials
        return f"RdfSource(kind={self.kind!r}, location={self.display!r}, fmt={self.fmt!r})"


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
    if sum(str(raw) == STDIN for raw in sources) > 1:
        raise KBImportError(Errors.E096.format(path=STDIN))
    for raw in sources:
        path = Path(raw)
        if str(raw) == STDIN:
            out.append(_file_source(path, forced))
            continue
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
    # A name with an RDF extension tells whether the file is compressed (a gzip file named
    # .nt is an error to report); a nameless stream (a pipe, "-", /dev/fd/N) is recognised
    # by its first bytes.
    return RdfSource("file", str(path), info, compression if compression or guessed else AUTO)


def sparql_source(url: str, query: str | None = None) -> RdfSource:
    """A SPARQL endpoint source. `url` keeps its credentials and query string for the
    request; use `display` for anything shown or stored."""
    check_url(url)
    return RdfSource("sparql", url, query=query or DEFAULT_CONSTRUCT)


# --- reading ---------------------------------------------------------------------------


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def read_quads(source: RdfSource, *, base_iri: str | None = None, engine: str = "oxigraph",
               timeout: float = 60.0,
               max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
               max_bytes: int = DEFAULT_MAX_BYTES, max_xml_depth: int = DEFAULT_MAX_XML_DEPTH,
               stats: ReadStats | None = None) -> Iterator[Iterable[ox.Quad]]:
    """Context manager giving the quads of one source as a plain iterable.

    Errors raised while the caller iterates (pyoxigraph parses lazily) are translated on
    the way out into KBImportError naming the source and line. No generator sits between
    the Rust parser and the caller's loop: on FB15k-237 that layer alone cost ~25%.
    A file is read exactly once (pipes and FIFOs included); `stats` receives its size and
    sha256 when the caller's block ends normally. More than `max_bytes` decompressed
    bytes raise E090, RDF/XML nested deeper than `max_xml_depth` E092.
    """
    where = source.display
    info = source.fmt
    copies: list[IO[bytes]] = []  # spooled documents, kept open for error lines
    try:
        with contextlib.ExitStack() as stack:
            if source.kind == "store":
                yield _store_quads(source)
            elif source.kind == "sparql":
                # Relative IRIs resolve against the endpoint URL without its secrets (never
                # against user:password or an API key in the query string), unless --base is given.
                with scrubbed_errors(source.location):
                    data, name = fetch_construct(source.location, source.query or DEFAULT_CONSTRUCT,
                                                 timeout=timeout, max_response_bytes=max_response_bytes)
                    info = format_by_name(name)
                    if info.name == "rdf/xml":  # an endpoint is input too
                        if declares_dtd(io.BytesIO(data), where):
                            raise KBImportError(Errors.E003.format(path=where))
                        check_xml_well_formed(io.BytesIO(data), where)
                    yield ox.parse(data, format=info.oxigraph, base_iri=base_iri or where)
            else:
                assert info is not None
                # N3 goes to rdflib: pyoxigraph rejects N3 formulas with variables (rules),
                # which rdflib reads as quoted graphs that the compiler then skips.
                use_rdflib = engine == "rdflib" or info.name == "n3"
                # pyoxigraph's Turtle family takes a BOM for the start of a term.
                stream: IO[bytes] = stack.enter_context(open_once(
                    source.location, source.compression, max_bytes=max_bytes, stats=stats,
                    strip_bom=info.name != "rdf/xml"))
                if info.name == "rdf/xml" or use_rdflib:
                    # These checks and rdflib need the document more than once: a copy of
                    # the decompressed bytes, never a second read of the source.
                    copies.append(spool(stream))
                    stream = copies[-1]
                if info.name == "rdf/xml":
                    check_xml_safe(stream, where, max_xml_depth)
                elif info.name == "json-ld" and use_rdflib:
                    check_jsonld_contexts(stream, where)
                if use_rdflib:
                    yield _rdflib_quads(stream, info, where, base_iri)
                else:
                    yield ox.parse(stream, format=info.oxigraph, base_iri=base_iri)
    except SyntaxError as err:
        reason = err.msg or str(err)
        if "absolute IRI" in reason or "relative" in reason.lower():
            reason += " (relative IRIs need a base: pass --base IRI)"
        if "LoadDocumentCallback" in reason:  # a JSON-LD @context URL, never fetched
            raise KBImportError(Errors.E061.format(path=where, context="(a URL or file name)")) from None
        line: int | str | None = err.lineno
        if line is None and info is not None and info.name == "rdf/xml" and copies:
            line = _xml_error_line(copies[0])  # pyoxigraph's XML errors carry no position
        line = "?" if line is None else line
        name = info.name if info is not None else "?"
        raise KBImportError(Errors.E002.format(path=where, fmt=name, line=line, reason=reason)) from err
    except (OSError, EOFError) as err:  # bad gzip/bz2 data, unreadable file
        raise KBImportError(Errors.E013.format(path=where, reason=err)) from err
    except RuntimeError as err:  # RocksDB reports a damaged store while it is read
        if source.kind != "store":
            raise
        raise KBImportError(Errors.E095.format(path=where, reason=str(err).strip() or type(err).__name__)) from err
    finally:
        for copy in copies:
            copy.close()


def _xml_error_line(data: IO[bytes]) -> int | None:
    try:
        data.seek(0)
        found = xml_error(data)
    except (OSError, ValueError):  # a closed or unreadable copy
        return None
    return found[0] if found else None


def _store_quads(source: RdfSource) -> Iterator[ox.Quad]:
    try:
        store = ox.Store.read_only(source.location)
    except OSError as err:
        raise KBImportError(Errors.E013.format(path=source.location, reason=err)) from err
    except RuntimeError as err:  # RocksDB: "Corruption: ..." in CURRENT, MANIFEST or a table file
        raise KBImportError(Errors.E095.format(path=source.location, reason=str(err).strip())) from err
    yield from store.quads_for_pattern(None, None, None, None)


def _rdflib_quads(data: IO[bytes], fmt: RdfFormatInfo, where: str, base_iri: str | None) -> list[ox.Quad]:
    """Parse with rdflib and convert its terms (the slow fallback path). `data` must be
    rewindable (to find the line of an XML error)."""
    import warnings

    import rdflib

    graph = rdflib.Dataset() if fmt.name in ("n-quads", "trig") else rdflib.Graph()
    # rdflib's own parsers use its deprecated ConjunctiveGraph internally; not our concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            graph.parse(data, format=fmt.rdflib, publicID=base_iri)
        except (OSError, EOFError) as err:
            raise KBImportError(Errors.E013.format(path=where, reason=err)) from err
        except Exception as err:  # rdflib raises many unrelated types for bad syntax
            line: int | str = "?"
            if isinstance(getattr(err, "lines", None), int):  # notation3's BadSyntax, 0-based
                line = err.lines + 1  # type: ignore[attr-defined]
            elif fmt.name == "rdf/xml":
                line = _xml_error_line(data) or "?"
            why = getattr(err, "_why", None)
            first = why or (str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            raise KBImportError(Errors.E002.format(path=where, fmt=fmt.name, line=line, reason=first)) from err
        triples = graph.quads((None, None, None, None)) if isinstance(graph, rdflib.Dataset) else (
            (s, p, o, None) for s, p, o in graph)
        out = []
        try:
            for s, p, o, _ in triples:
                subject, obj = _from_rdflib(s), _from_rdflib(o)
                if type(subject) is ox.Literal:
                    raise ValueError("a literal cannot be the subject of a triple")
                if subject is not None and obj is not None and isinstance(p, rdflib.URIRef):
                    out.append(ox.Quad(subject, ox.NamedNode(str(p)), obj))
        except ValueError as err:  # rdflib lets through IRIs and strings that RDF forbids
            term = next((str(t) for t in (s, p, o) if not _converts(t)), str(s))  # else: a literal subject
            raise KBImportError(Errors.E002.format(path=where, fmt=fmt.name, line="?",
                                                   reason=f"{err} in {term[:200]!r}")) from None
    return out


def _converts(term: Any) -> bool:
    try:
        _from_rdflib(term)
    except ValueError:
        return False
    return True


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
