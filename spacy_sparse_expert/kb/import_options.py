"""How an RDF import reads its sources: the vocabulary it looks for, the parser, and the
budgets that bound its memory and time. Every option is checked before anything is read
or written, so a bad value is one coded error rather than a traceback halfway through.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import pyoxigraph as ox

from ..errors import Errors, KBImportError
from .graph_features import ENGINES as GRAPH_ENGINES
from .source_stream import DEFAULT_MAX_BYTES
from .sparql import DEFAULT_MAX_RESPONSE_BYTES
from .untrusted import DEFAULT_MAX_XML_DEPTH

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
RDF_TYPE = RDF + "type"
RDFS_SUBCLASS_OF = RDFS + "subClassOf"
DEFAULT_LABEL_PREDICATES: tuple[str, ...] = (
    RDFS + "label", SKOS + "prefLabel", SKOS + "altLabel", "http://schema.org/name", "http://xmlns.com/foaf/0.1/name",
)
# Entity descriptions, in order of preference: one short text per entity, kept as is
# (never an alias) for text-side features.
DEFAULT_DESCRIPTION_PREDICATES: tuple[str, ...] = (
    "http://schema.org/description", RDFS + "comment", SKOS + "definition", "http://purl.org/dc/terms/description",
)
ALT_LABEL_PREDICATES = frozenset({SKOS + "altLabel", SKOS + "hiddenLabel"})
CLASS_TYPES = frozenset({RDFS + "Class", OWL + "Class"})
PROPERTY_TYPES = frozenset({RDF + "Property", OWL + "ObjectProperty", OWL + "DatatypeProperty",
                            OWL + "AnnotationProperty", OWL + "TransitiveProperty", OWL + "SymmetricProperty",
                            OWL + "FunctionalProperty", OWL + "InverseFunctionalProperty"})
ANY_LANGUAGE = "*"
# Triples read, over all sources, duplicates included. 200M is 20 times a 10M-triple graph
# and about what an in-memory KB holds on a 64 GB machine; reading that many takes a few
# minutes, which bounds the time a decompression bomb of repeated triples can take.
DEFAULT_MAX_TRIPLES = 200_000_000
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


@dataclass(frozen=True)
class ImportOptions:
    """How to read the RDF. Stored (without credentials) in meta.json."""

    label_predicates: tuple[str, ...] = DEFAULT_LABEL_PREDICATES
    description_predicates: tuple[str, ...] = DEFAULT_DESCRIPTION_PREDICATES  # () = no descriptions
    languages: tuple[str, ...] = ("en",)   # of labels and descriptions; untagged always accepted; "*" = any
    type_predicate: str = RDF_TYPE
    subclass_predicate: str = RDFS_SUBCLASS_OF
    relations: tuple[str, ...] | None = None  # None: every predicate between two entities
    base: str | None = None
    format: str | None = None
    max_candidates: int = 30
    engine: str = "oxigraph"               # "oxigraph" (fast) or "rdflib"
    graph_engine: str = "fast"             # "fast" (numpy/scipy) or "networkx"
    timeout: float = 60.0                  # SPARQL request timeout, seconds
    max_triples: int = DEFAULT_MAX_TRIPLES  # triples read over all sources (E091)
    max_bytes: int = DEFAULT_MAX_BYTES     # decompressed bytes per source (E090)
    max_xml_depth: int = DEFAULT_MAX_XML_DEPTH  # RDF/XML element nesting (E092)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # one SPARQL answer (E100)

    def to_meta(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def import_options(**options: Any) -> ImportOptions:
    """ImportOptions from keyword arguments (lists become tuples), every value checked.

    Raises E033 for an unknown engine, E093 for a --base that is not an absolute IRI and
    E094 for a timeout, budget or count that is not a finite number above zero.
    """
    try:
        opts = ImportOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    except TypeError as err:  # an unknown keyword
        raise KBImportError(Errors.E094.format(key="(options)", value=sorted(options), reason=err)) from None
    if opts.engine not in ("oxigraph", "rdflib"):
        raise KBImportError(Errors.E033.format(key="engine", value=opts.engine, reason="use 'oxigraph' or 'rdflib'"))
    if opts.graph_engine not in GRAPH_ENGINES:
        raise KBImportError(Errors.E033.format(key="graph_engine", value=opts.graph_engine,
                                               reason=f"use one of {', '.join(GRAPH_ENGINES)}"))
    timeout = opts.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise KBImportError(Errors.E094.format(key="timeout (--timeout)", value=timeout,
                                               reason="pass a finite number of seconds greater than 0"))
    for key, flag in (("max_triples", "--max-triples"), ("max_bytes", "--max-bytes"),
                      ("max_xml_depth", "--max-xml-depth"), ("max_candidates", "--max-candidates"),
                      ("max_response_bytes", "--max-response-bytes")):
        value = getattr(opts, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KBImportError(Errors.E094.format(key=f"{key} ({flag})", value=value,
                                                   reason="pass a whole number greater than 0"))
    predicates = opts.description_predicates
    if not isinstance(predicates, tuple) or not all(isinstance(p, str) and p for p in predicates):
        raise KBImportError(Errors.E094.format(key="description_predicates (--description-predicate)",
                                               value=predicates, reason="pass a list of predicate IRIs (or none)"))
    if opts.base is not None:
        check_base_iri(opts.base)
    return opts


def check_base_iri(base: str) -> None:
    """Refuse a base IRI that cannot resolve relative IRIs: rdflib silently accepts `urn`
    and makes every relative IRI a string that is not an IRI (E093)."""
    scheme = _SCHEME.match(base) if isinstance(base, str) else None
    if scheme is None:
        raise KBImportError(Errors.E093.format(value=base, reason="it has no scheme (like http: or urn:)"))
    if scheme.end() == len(base):
        raise KBImportError(Errors.E093.format(value=base, reason=f"nothing follows the scheme {scheme.group()}"))
    try:
        ox.NamedNode(base)
    except ValueError as err:
        raise KBImportError(Errors.E093.format(value=base, reason=err)) from None


__all__ = ["DEFAULT_DESCRIPTION_PREDICATES", "DEFAULT_LABEL_PREDICATES", "DEFAULT_MAX_TRIPLES", "ImportOptions",
           "check_base_iri", "import_options"]
