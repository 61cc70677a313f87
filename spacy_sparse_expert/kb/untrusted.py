"""Checks on untrusted RDF input, run before any parser sees it.

Files and endpoint responses are untrusted: RDF/XML declaring a DOCTYPE or entities (in
whatever encoding the XML declares), RDF/XML that is not well-formed or nests too deep,
and JSON-LD naming a remote or file ``@context`` are refused (coded ``KBImportError``)
before a parser could fetch anything or run for minutes. The scans read only the
document itself, from a rewindable copy, and leave it at the start.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import IO, Any

from ..errors import Errors, KBImportError

# Elements nested in RDF/XML: real files stay under a few dozen levels; pyoxigraph takes
# ~0.06 s at 2,000 levels but 23 s at 40,000 (superlinear), so deeper is refused (E092).
DEFAULT_MAX_XML_DEPTH = 2_000
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


def check_xml_safe(data: IO[bytes], where: str, max_depth: int = DEFAULT_MAX_XML_DEPTH) -> None:
    """Refuse RDF/XML that declares a DOCTYPE or entities, is not well-formed or nests
    deeper than `max_depth`, before any parser sees it. `data` must be rewindable (a
    spooled copy: a pipe cannot be read twice); it is left at the start.

    The scan reads only the document itself, never what an entity refers to, so an
    external entity pointing at a local file or URL is never dereferenced.
    """
    if declares_dtd(data, where):
        raise KBImportError(Errors.E003.format(path=where))
    data.seek(0)
    check_xml_well_formed(data, where, max_depth)
    data.seek(0)


def check_jsonld_contexts(data: IO[bytes], where: str) -> None:
    """Refuse JSON-LD whose @context (or a context's @import) is a URL or file name.

    rdflib would fetch it: a local file read or a network request chosen by the file.
    Inline context objects are fine. pyoxigraph never fetches (it reports E061 itself).
    `data` must be rewindable; it is left at the start.
    """
    try:
        document = json.load(data)
    except RecursionError:
        raise KBImportError(Errors.E002.format(path=where, fmt="json-ld", line="?",
                                               reason="JSON nested too deeply")) from None
    except json.JSONDecodeError as err:
        raise KBImportError(Errors.E002.format(path=where, fmt="json-ld", line=err.lineno,
                                               reason=err.msg)) from None
    except ValueError as err:  # not UTF-8, integer too long
        raise KBImportError(Errors.E002.format(path=where, fmt="json-ld", line="?", reason=err)) from None
    finally:
        data.seek(0)
    todo: list[Any] = [document]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                remote = value if isinstance(value, list) else [value]
                if key in ("@context", "@import") and any(isinstance(v, str) for v in remote):
                    context = next(v for v in remote if isinstance(v, str))
                    raise KBImportError(Errors.E061.format(path=where, context=repr(context)[:200]))
                todo.append(value)


class XmlTooDeep(Exception):
    """Raised by `xml_error` at the first element nested deeper than allowed."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def xml_error(stream: IO[bytes], max_depth: int | None = None) -> tuple[int, str] | None:
    """(line, message) of the first XML well-formedness error, found with expat (which
    never loads external entities; DOCTYPEs were refused before); None if well-formed.
    With `max_depth`, nesting deeper than that raises XmlTooDeep."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    if max_depth is not None:
        # Counted here because pyoxigraph's RDF/XML parser is superlinear in the depth
        # (40,000 levels: 23 s); expat itself is linear. Costs about one expat pass.
        depth = 0

        def start(name: str, attrs: Any) -> None:
            nonlocal depth
            depth += 1
            if depth > max_depth:  # type: ignore[operator]
                raise XmlTooDeep(parser.CurrentLineNumber)

        def end(name: str) -> None:
            nonlocal depth
            depth -= 1

        parser.StartElementHandler = start
        parser.EndElementHandler = end
    try:
        parser.ParseFile(stream)
    except xml.parsers.expat.ExpatError as err:
        return int(err.lineno), xml.parsers.expat.ErrorString(err.code)
    return None


def check_xml_well_formed(data: IO[bytes], where: str, max_depth: int = DEFAULT_MAX_XML_DEPTH) -> None:
    """pyoxigraph's RDF/XML parser returns the triples before a cut-off (a truncated
    download would import silently, half of it); expat refuses what is not well-formed,
    and nesting deeper than `max_depth` (E092)."""
    try:
        found = xml_error(data, max_depth)
    except XmlTooDeep as err:
        raise KBImportError(Errors.E092.format(path=where, line=err.line, limit=max_depth)) from None
    if found is not None:
        raise KBImportError(Errors.E002.format(path=where, fmt="rdf/xml", line=found[0],
                                               reason=f"not well-formed XML: {found[1]}"))


__all__ = ["DEFAULT_MAX_XML_DEPTH", "XmlTooDeep", "check_jsonld_contexts", "check_xml_safe", "check_xml_well_formed",
           "declares_dtd", "xml_encoding", "xml_error"]
