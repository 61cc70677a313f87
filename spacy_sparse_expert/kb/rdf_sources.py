"""Where triples come from: RDF files (any common syntax, optionally compressed),
directories of them, Oxigraph store directories and SPARQL endpoints (`sparql.py`).

Every source is read as a stream of ``pyoxigraph.Quad`` objects: pyoxigraph's Rust
parsers are the fast path for six syntaxes; rdflib is the fallback (``engine="rdflib"``,
and always for N3, whose rules pyoxigraph cannot read), its terms converted to the same
objects. Errors are translated into coded ``KBImportError`` messages naming the file and
line. Files are untrusted: RDF/XML declaring a DOCTYPE or entities (in whatever encoding
the XML declares) and JSON-LD naming a remote or file ``@context`` are refused before a
parser could fetch anything.
"""
from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import pyoxigraph as ox

from ..errors import Errors, KBImportError
from .sparql import DEFAULT_CONSTRUCT, check_url, fetch_construct, redact_url


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
    check_url(url)
    return RdfSource("sparql", url, query=query or DEFAULT_CONSTRUCT)


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


_DTD = re.compile(r"<!\s*(doctype|entity)", re.IGNORECASE)
# Byte signatures of XML documents (XML 1.0 appendix F), longest first.
_XML_SIGNATURES = (
    (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"), (b"\xfe\xff", "utf-16"), (b"\xff\xfe", "utf-16"), (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8-sig"),
)
_XML_DECL = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def xml_encoding(head: bytes) -> str:
    """The encoding an XML parser reads a document starting with `head` in: a byte order
    mark or signature, else the encoding of the XML declaration, else UTF-8."""
    for signature, encoding in _XML_SIGNATURES:
        if head.startswith(signature):
            return encoding
    declared = _XML_DECL.match(head)
    return declared.group(1).decode("ascii").lower() if declared else "utf-8"


def declares_dtd(stream: IO[bytes], where: str) -> bool:
    """Whether an XML byte stream holds a DOCTYPE or an entity declaration.

    The bytes are decoded as an XML parser would decode them, so a declaration written in
    UTF-16 or a declared single-byte encoding (even EBCDIC) is found as well. Raises E064
    for an encoding Python cannot decode: the document cannot be checked, so it is refused.
    """
    chunk = stream.read(1 << 16)
    encoding = xml_encoding(chunk)
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        raise KBImportError(Errors.E064.format(path=where, encoding=encoding)) from None
    tail = ""
    while chunk:
        text = tail + decoder.decode(chunk)
        if _DTD.search(text):
            return True
        tail = text[-16:]
        chunk = stream.read(1 << 20)
    return _DTD.search(tail + decoder.decode(b"", final=True)) is not None


def check_xml_safe(source: RdfSource) -> None:
    """Refuse RDF/XML that declares a DOCTYPE or entities, before any parser sees it.

    The scan reads only the file itself (decompressed), never what an entity refers
    to, so an external entity pointing at a local file or URL is never dereferenced.
    """
    with open_binary(source) as fh:
        if declares_dtd(fh, source.location):
            raise KBImportError(Errors.E003.format(path=source.location))
    with open_binary(source) as fh:
        check_xml_well_formed(fh, source.location)


def check_jsonld_contexts(source: RdfSource) -> None:
    """Refuse JSON-LD whose @context (or a context's @import) is a URL or file name.

    rdflib would fetch it: a local file read or a network request chosen by the file.
    Inline context objects are fine. pyoxigraph never fetches (it reports E061 itself).
    """
    try:
        with open_binary(source) as fh:
            data = json.load(fh)
    except RecursionError:
        raise KBImportError(Errors.E002.format(path=source.location, fmt="json-ld", line="?",
                                               reason="JSON nested too deeply")) from None
    except json.JSONDecodeError as err:
        raise KBImportError(Errors.E002.format(path=source.location, fmt="json-ld", line=err.lineno,
                                               reason=err.msg)) from None
    except ValueError as err:  # not UTF-8, integer too long
        raise KBImportError(Errors.E002.format(path=source.location, fmt="json-ld", line="?", reason=err)) from None
    todo = [data]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                remote = value if isinstance(value, list) else [value]
                if key in ("@context", "@import") and any(isinstance(v, str) for v in remote):
                    context = next(v for v in remote if isinstance(v, str))
                    raise KBImportError(Errors.E061.format(path=source.location, context=repr(context)[:200]))
                todo.append(value)


def xml_error(stream: IO[bytes]) -> tuple[int, str] | None:
    """(line, message) of the first XML well-formedness error, found with expat (which
    never loads external entities; DOCTYPEs were refused before); None if well-formed."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.ParseFile(stream)
    except xml.parsers.expat.ExpatError as err:
        return int(err.lineno), xml.parsers.expat.ErrorString(err.code)
    return None


def xml_error_line(source: RdfSource) -> int | None:
    """Line of the first XML well-formedness error of a file source, or None."""
    try:
        with open_binary(source) as fh:
            found = xml_error(fh)
    except (OSError, EOFError):
        return None
    return found[0] if found else None


def check_xml_well_formed(data: IO[bytes], where: str) -> None:
    """pyoxigraph's RDF/XML parser returns the triples before a cut-off (a truncated
    download would import silently, half of it); expat refuses what is not well-formed."""
    found = xml_error(data)
    if found is not None:
        raise KBImportError(Errors.E002.format(path=where, fmt="rdf/xml", line=found[0],
                                               reason=f"not well-formed XML: {found[1]}"))


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
                data, name = fetch_construct(source.location, source.query or DEFAULT_CONSTRUCT, timeout=timeout)
                info = format_by_name(name)
                if info.name == "rdf/xml":  # an endpoint is input too
                    if declares_dtd(io.BytesIO(data), where):
                        raise KBImportError(Errors.E003.format(path=where))
                    check_xml_well_formed(io.BytesIO(data), where)
                yield ox.parse(data, format=info.oxigraph, base_iri=source.location)
            else:
                assert info is not None
                if info.name == "rdf/xml":
                    check_xml_safe(source)
                elif info.name == "json-ld" and engine == "rdflib":
                    check_jsonld_contexts(source)
                # N3 goes to rdflib: pyoxigraph rejects N3 formulas with variables (rules),
                # which rdflib reads as quoted graphs that the compiler then skips.
                if engine == "rdflib" or info.name == "n3":
                    yield _rdflib_quads(source, base_iri)
                elif source.compression or _starts_with_bom(source):
                    # A C-level buffer in front of the Python decompressor: pyoxigraph reads
                    # in small chunks, and GzipFile.read is Python code.
                    raw = stack.enter_context(open_binary(source))
                    buffered = io.BufferedReader(raw, 1 << 20)  # type: ignore[arg-type]
                    if buffered.peek(3)[:3] == codecs.BOM_UTF8 and info.name != "rdf/xml":
                        buffered.read(3)  # pyoxigraph's Turtle family takes a BOM for a term
                    yield ox.parse(buffered, format=info.oxigraph, base_iri=base_iri)  # type: ignore[arg-type]
                else:
                    yield ox.parse(path=source.location, format=info.oxigraph, base_iri=base_iri)
    except SyntaxError as err:
        reason = err.msg or str(err)
        if "absolute IRI" in reason or "relative" in reason.lower():
            reason += " (relative IRIs need a base: pass --base IRI)"
        if "LoadDocumentCallback" in reason:  # a JSON-LD @context URL, never fetched
            raise KBImportError(Errors.E061.format(path=where, context="(a URL or file name)")) from None
        line: int | str | None = err.lineno
        if line is None and info is not None and info.name == "rdf/xml" and source.kind == "file":
            line = xml_error_line(source)  # pyoxigraph's XML errors carry no position
        line = "?" if line is None else line
        name = info.name if info is not None else "?"
        raise KBImportError(Errors.E002.format(path=where, fmt=name, line=line, reason=reason)) from err
    except (OSError, EOFError) as err:  # bad gzip/bz2 data, unreadable file
        raise KBImportError(Errors.E013.format(path=where, reason=err)) from err


def _starts_with_bom(source: RdfSource) -> bool:
    with open(source.location, "rb") as fh:
        return fh.read(3) == codecs.BOM_UTF8


def _store_quads(source: RdfSource) -> Iterator[ox.Quad]:
    try:
        store = ox.Store.read_only(source.location)
    except OSError as err:
        raise KBImportError(Errors.E013.format(path=source.location, reason=err)) from err
    yield from store.quads_for_pattern(None, None, None, None)


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
        try:
            for s, p, o, _ in triples:
                subject, obj = _from_rdflib(s), _from_rdflib(o)
                if type(subject) is ox.Literal:
                    raise ValueError("a literal cannot be the subject of a triple")
                if subject is not None and obj is not None and isinstance(p, rdflib.URIRef):
                    out.append(ox.Quad(subject, ox.NamedNode(str(p)), obj))
        except ValueError as err:  # rdflib lets through IRIs and strings that RDF forbids
            term = next((str(t) for t in (s, p, o) if not _converts(t)), str(s))  # else: a literal subject
            raise KBImportError(Errors.E002.format(path=source.location, fmt=source.fmt.name, line="?",
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
